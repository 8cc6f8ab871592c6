"use strict";
// A small Markdown renderer for OCR output: headings, paragraphs, lists, code, pipe tables, emphasis, and the
// HTML tables and <center> captions DeepSeek-OCR writes. Everything is escaped first; only table tags (with
// colspan/rowspan) and <center> are let through, so model output can never inject markup or script.

(function () {
  const escape = (text) =>
    text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

  const ALLOWED = /&lt;(\/?)(table|thead|tbody|tr|td|th|center)((?:\s+(?:colspan|rowspan)=&quot;\d+&quot;)*)\s*&gt;/gi;
  const allowTags = (html) =>
    html.replace(ALLOWED, (_, close, tag, attrs) => {
      const name = tag.toLowerCase();
      if (name === "center") return close ? "</div>" : '<div class="center">';
      return `<${close}${name}${attrs.replace(/&quot;/g, '"')}>`;
    });

  const inline = (text) =>
    allowTags(escape(text))
      .replace(/`([^`]+)`/g, "<code>$1</code>")
      .replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>")
      .replace(/(^|[^*])\*([^*\s][^*]*)\*/g, "$1<em>$2</em>");

  const cells = (line) => line.trim().replace(/^\||\|$/g, "").split("|").map((cell) => cell.trim());

  function pipeTable(lines) {
    const rows = lines.filter((line) => !/^\s*\|?\s*:?-{2,}/.test(line));
    const [head, ...body] = rows.map(cells);
    const row = (items, tag) => `<tr>${items.map((c) => `<${tag}>${inline(c)}</${tag}>`).join("")}</tr>`;
    return `<table><thead>${row(head, "th")}</thead><tbody>${body.map((r) => row(r, "td")).join("")}</tbody></table>`;
  }

  function block(lines) {
    const first = lines[0];
    const heading = /^(#{1,6})\s+(.*)$/.exec(first);
    if (heading && lines.length === 1) return `<h${heading[1].length}>${inline(heading[2])}</h${heading[1].length}>`;
    if (lines.every((line) => /^\s*[-*+]\s+/.test(line))) {
      return `<ul>${lines.map((line) => `<li>${inline(line.replace(/^\s*[-*+]\s+/, ""))}</li>`).join("")}</ul>`;
    }
    if (lines.every((line) => /^\s*\d+[.)]\s+/.test(line))) {
      return `<ol>${lines.map((line) => `<li>${inline(line.replace(/^\s*\d+[.)]\s+/, ""))}</li>`).join("")}</ol>`;
    }
    if (lines.length > 1 && lines.every((line) => line.trim().startsWith("|"))) return pipeTable(lines);
    return `<p>${lines.map(inline).join("<br>")}</p>`;
  }

  window.renderMarkdown = function (markdown) {
    const out = [];
    let lines = [];
    let fence = null;
    const flush = () => {
      if (lines.length) out.push(block(lines));
      lines = [];
    };
    for (const line of markdown.split("\n")) {
      if (fence !== null) {
        if (line.startsWith("```")) {
          out.push(`<pre><code>${escape(fence.join("\n"))}</code></pre>`);
          fence = null;
        } else fence.push(line);
      } else if (line.startsWith("```")) {
        flush();
        fence = [];
      } else if (!line.trim()) flush();
      else if (/^#{1,6}\s/.test(line)) {
        flush();
        out.push(block([line]));
      } else lines.push(line);
    }
    if (fence !== null) out.push(`<pre><code>${escape(fence.join("\n"))}</code></pre>`);
    flush();
    return out.join("\n");
  };
})();

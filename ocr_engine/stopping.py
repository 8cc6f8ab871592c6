"""Stop sequences over streamed text: never release text that might turn out to start a stop sequence."""

from __future__ import annotations

from collections.abc import Sequence


class StopMatcher:
    """Feed text as it is decoded; get back what is safe to show, and whether a stop sequence was reached."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [stop for stop in stops if stop]
        self.hold = max((len(stop) for stop in self.stops), default=1) - 1
        self.buffer = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        if self.stopped:
            return ""
        self.buffer += text
        hits = [i for i in (self.buffer.find(stop) for stop in self.stops) if i >= 0]
        if hits:
            released, self.buffer, self.stopped = self.buffer[: min(hits)], "", True
            return released
        cut = max(len(self.buffer) - self.hold, 0)
        released, self.buffer = self.buffer[:cut], self.buffer[cut:]
        return released

    def finish(self) -> str:
        released, self.buffer = self.buffer, ""
        return released

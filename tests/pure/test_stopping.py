from ocr_engine.stopping import StopMatcher


def feed_all(matcher: StopMatcher, pieces: list[str]) -> str:
    return "".join(matcher.feed(piece) for piece in pieces) + ("" if matcher.stopped else matcher.finish())


def test_stop_split_across_deltas_is_never_released():
    matcher = StopMatcher(["END"])
    released = [matcher.feed(p) for p in ["abc E", "N", "D tail"]]
    assert released == ["abc", " ", ""]
    assert matcher.stopped


def test_earliest_of_several_stops_wins_and_text_without_stops_passes():
    assert feed_all(StopMatcher(["zz", "b"]), ["aa", "bzz"]) == "aa"
    plain = StopMatcher(["###"])
    assert feed_all(plain, ["one #", "# two"]) == "one ## two" and not plain.stopped
    assert feed_all(StopMatcher([]), ["x", "y"]) == "xy"

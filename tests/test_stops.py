from inference.engine.stops import StopFilter


def run(stops, pieces):
    f = StopFilter(stops)
    out = []
    for piece in pieces:
        text, hit = f.feed(piece)
        out.append(text)
        if hit:
            return "".join(out), True
    out.append(f.flush())
    return "".join(out), False


def test_no_stops_passes_through():
    assert run([], ["a", "b"]) == ("ab", False)


def test_stop_inside_one_piece():
    assert run(["END"], ["helloENDworld"]) == ("hello", True)


def test_stop_split_across_pieces_never_leaks():
    f = StopFilter(["</s>"])
    assert f.feed("abc<") == ("abc", False)
    assert f.feed("/") == ("", False)
    assert f.feed("s>tail") == ("", True)


def test_false_start_is_released():
    assert run(["STOP"], ["ST", "OX", "!"]) == ("STOX!", False)
    f = StopFilter(["STOP"])
    assert f.feed("ST") == ("", False)
    assert f.feed("OX") == ("STOX", False)


def test_earliest_of_several_stops_wins():
    assert run(["b", "cd"], ["a", "xcdyb"]) == ("ax", True)


def test_held_text_flushed_at_end():
    assert run(["\n\n"], ["line\n"]) == ("line\n", False)

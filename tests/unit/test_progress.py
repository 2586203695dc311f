"""The live progress line: what it says after each round, and how it reaches a terminal or a log."""

from types import SimpleNamespace

from pytest_inferlab.plugin.progress import RoundProgress, TerminalLine


def test_each_round_says_its_count_the_timed_rate_so_far_and_the_time_left():
    said, now = [], iter([0.0, 4.0, 6.0, 10.0, 12.0])  # the wall clock: at the start, then after each round
    progress = RoundProgress(total=4, say=said.append, clock=lambda: next(now))
    progress.done(100, 4.0, warmup=True)
    progress.done(100, 2.0, warmup=False)
    progress.done(300, 4.0, warmup=False)
    progress.done(100, 2.0, warmup=False)
    assert said[0] == "warm-up 1/4: 100 tok in 4.0 s, 25.0 tok/s, ~12 s left"
    assert said[1] == "round 2/4: 100 tok in 2.0 s, 50.0 tok/s so far, ~6 s left"  # warm-up left out of the rate
    assert said[2] == "round 3/4: 300 tok in 4.0 s, 66.7 tok/s so far, ~3 s left"
    assert said[3].endswith("62.5 tok/s so far, done")


class FakeReporter:
    def __init__(self, tty):
        self.tty, self.out = tty, []

    def isatty(self):
        return self.tty

    def rewrite(self, line, erase=False):
        self.out.append(("rewrite", line))

    def write(self, text):
        self.out.append(("write", text))

    def write_line(self, line):
        self.out.append(("line", line))

    def ensure_newline(self):
        pass

    def flush(self):
        pass


class FakeCapture:
    def __init__(self):
        self.suspended = 0

    def global_and_fixture_disabled(self):
        capture = self

        class Suspended:
            def __enter__(self):
                capture.suspended += 1

            def __exit__(self, *exc):
                return False

        return Suspended()


def line_for(reporter, capture=None):
    plugins = {"terminalreporter": reporter, "capturemanager": capture}
    config = SimpleNamespace(pluginmanager=SimpleNamespace(get_plugin=plugins.get))
    return TerminalLine(config, quiet=False)


def test_on_a_terminal_live_text_is_rewritten_in_place_and_ended_by_the_next_line():
    reporter, capture = FakeReporter(tty=True), FakeCapture()
    line = line_for(reporter, capture)
    line.write("round 1/4", live=True)
    line.write("round 2/4", live=True)
    line.write("loaded the model")
    assert reporter.out == [("rewrite", "[inferlab] round 1/4"), ("rewrite", "[inferlab] round 2/4"),
                            ("write", "\n"), ("line", "[inferlab] loaded the model")]
    assert capture.suspended == 3  # written past pytest's output capture every time


def test_in_a_log_every_update_is_a_line_and_a_quiet_run_writes_nothing():
    reporter = FakeReporter(tty=False)
    line = line_for(reporter)
    line.write("round 1/4", live=True)
    line.write("round 2/4", live=True)
    assert reporter.out == [("line", "[inferlab] round 1/4"), ("line", "[inferlab] round 2/4")]
    quiet = TerminalLine(SimpleNamespace(pluginmanager=SimpleNamespace(get_plugin=lambda name: reporter)), quiet=True)
    quiet.write("nothing")
    assert len(reporter.out) == 2

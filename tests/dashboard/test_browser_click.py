"""The browser tests' click on a chart dot (``tests.dashboard.test_browser._click_dot``), on a fake page.

A full suite with ``yes`` beside it once saw the click on a settled dot open another point: the
page moved after it had settled. The click now retries a miss only when the dot has moved, and
fails at once when a dot that stayed put opens another point.
"""

from __future__ import annotations

import pytest

from tests.dashboard.test_browser import _click_dot


class FakeChart:
    """A chart whose dot of ``point`` sits at ``places[k]`` after ``k`` clicks; a click opens
    ``opens(k, x, y)``: the point shown in the drill-down box."""

    def __init__(self, point, places, opens, shown=0):
        self.point, self.places, self.opens, self.value = point, places, opens, shown
        self.clicks = 0
        self.mouse = self

    # page
    def click(self, x, y):
        self.value = self.opens(self.clicks, x, y)
        self.clicks += 1

    def wait_for_timeout(self, ms):
        pass

    def read(self):
        x, y = self.places[min(self.clicks, len(self.places) - 1)]
        return {"point": self.point, "x": x, "y": y}

    # drill-down box
    def input_value(self):
        return str(self.value)


def test_a_click_that_lands_opens_the_point():
    chart = FakeChart(7, [(10, 10)], lambda k, x, y: 7)
    assert _click_dot(chart, chart, chart.read, timeout=1)["point"] == 7
    assert chart.clicks == 1


def test_a_miss_on_a_moved_dot_is_clicked_again():
    # the first click hit point 9, because the chart had moved: point 7 is now 40 px lower
    chart = FakeChart(7, [(10, 10), (10, 50)], lambda k, x, y: 7 if (x, y) == (10, 50) else 9)
    assert _click_dot(chart, chart, chart.read, timeout=1)["point"] == 7
    assert chart.clicks == 2


def test_a_miss_on_a_dot_that_stayed_put_fails():
    chart = FakeChart(7, [(10, 10)], lambda k, x, y: 9)
    with pytest.raises(AssertionError, match="stayed put"):
        _click_dot(chart, chart, chart.read, timeout=1)
    assert chart.clicks == 1


def test_a_chart_that_keeps_moving_fails():
    chart = FakeChart(7, [(10, 10 + 40 * k) for k in range(5)], lambda k, x, y: 9 + k)
    with pytest.raises(pytest.fail.Exception, match="kept moving"):
        _click_dot(chart, chart, chart.read, timeout=1)
    assert chart.clicks == 3

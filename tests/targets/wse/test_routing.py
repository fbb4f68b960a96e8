"""Routes, router tables, link loads and colors on cases small enough to check by hand."""

from __future__ import annotations

import pytest

from targets.wse.routing import (EAST, NORTH, RAMP, SOUTH, WEST, WaferColors, assign_colors, build_route,
                                 fabric_load, router_tables, yx_path)


def test_yx_path_goes_along_the_column_first() -> None:
    assert yx_path((0, 0), (2, 3)) == [(0, 0), (1, 0), (2, 0), (2, 1), (2, 2), (2, 3)]
    assert yx_path((3, 3), (1, 1)) == [(3, 3), (2, 3), (1, 3), (1, 2), (1, 1)]
    assert yx_path((1, 1), (1, 1)) == [(1, 1)]


def test_multicast_route_is_a_tree_with_one_input_per_router() -> None:
    # From (0,0) to (2,2) and (2,4): down the column to row 2, then east; (2,2) receives and forwards.
    route = build_route(7, (0, 0), [(2, 2), (2, 4)], wavelets=10)
    assert route.entries[(0, 0)].input == RAMP and route.entries[(0, 0)].outputs == {SOUTH}
    assert route.entries[(1, 0)].input == NORTH and route.entries[(1, 0)].outputs == {SOUTH}
    assert route.entries[(2, 0)].outputs == {EAST}
    assert route.entries[(2, 2)].input == WEST and route.entries[(2, 2)].outputs == {EAST, RAMP}
    assert route.entries[(2, 4)].outputs == {RAMP}
    assert route.hops == 6
    assert len(route.links()) == 6  # one copy per link: 2 down, 4 east


def test_row_broadcast_counts_each_link_once() -> None:
    route = build_route(0, (3, 0), [(3, 1), (3, 2), (3, 3)], wavelets=5)
    load = fabric_load([route])
    assert load.link_wavelets == {((3, 0), EAST): 5, ((3, 1), EAST): 5, ((3, 2), EAST): 5}
    assert load.wavelet_hops == 15
    assert load.ramp_in == {(3, 0): 5}
    assert load.ramp_out == {(3, 1): 5, (3, 2): 5, (3, 3): 5}


def test_contention_adds_on_shared_links() -> None:
    # Both routes use the links (0,1)->(0,2) and (0,2)->(0,3) eastward: 4 + 6 wavelets per step there.
    first = build_route(0, (0, 0), [(0, 3)], wavelets=4)
    second = build_route(1, (0, 1), [(0, 3)], wavelets=6)
    load = fabric_load([first, second])
    assert load.link_wavelets[((0, 0), EAST)] == 4
    assert load.link_wavelets[((0, 1), EAST)] == 10
    assert load.link_wavelets[((0, 2), EAST)] == 10
    assert load.max_link == 10
    assert load.busiest == (((0, 1), EAST), 10)
    # Opposite directions of a link are separate resources.
    back = build_route(2, (0, 3), [(0, 0)], wavelets=3)
    load = fabric_load([first, back])
    assert load.link_wavelets[((0, 1), EAST)] == 4 and load.link_wavelets[((0, 2), WEST)] == 3


def test_routes_sharing_a_router_get_different_colors() -> None:
    crossing = [build_route(0, (0, 1), [(2, 1)], 1), build_route(1, (1, 0), [(1, 2)], 1)]  # meet at (1,1)
    apart = build_route(2, (5, 5), [(5, 6)], 1)
    assert assign_colors(crossing + [apart], 21) == 2
    assert crossing[0].color != crossing[1].color
    assert apart.color == 0
    tables = router_tables(crossing + [apart])
    assert set(tables[(1, 1)]) == {0, 1}


def test_colors_run_out() -> None:
    # Three routes through one router need three colors.
    routes = [build_route(i, (0, i), [(2, i)], 1) for i in range(3)]
    routes += [build_route(3, (1, 0), [(1, 2)], 1)]  # crosses all three
    assert assign_colors(routes, 1) is None
    assert all(r.color is None for r in routes)
    assert assign_colors(routes, 2) == 2


def test_wafer_colors_add_first_fit_then_recolor() -> None:
    colors = WaferColors(available=2)
    assert colors.add([build_route(0, (0, 0), [(0, 2)], 1)])
    assert colors.add([build_route(1, (1, 1), [(0, 1)], 1)])  # shares (0,1): the other color
    assert colors.used == 2
    assert not colors.add([build_route(2, (0, 1), [(1, 1)], 1)])  # needs a third color at (0,1)
    assert len(colors.routes) == 2


def test_router_tables_refuse_a_color_used_twice() -> None:
    a, b = build_route(0, (0, 0), [(0, 2)], 1), build_route(1, (1, 1), [(0, 1)], 1)
    a.color = b.color = 0
    with pytest.raises(AssertionError, match="used twice"):
        router_tables([a, b])

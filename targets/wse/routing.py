"""Routes on the fabric: dimension-ordered multicast trees, router tables, link loads and colors.

A channel (one sender, one or more receivers) becomes a route: the union of the Y-then-X paths from the
sender's router to each receiver's (first along the sender's column to the receiver's row, then along
that row). Paths from one source in this order form a tree (a router off the source column is always
entered from the source column's side, one on it from the source's side), so every router on a route
has exactly one input port for it and a set of output ports, the ramp among them where a receiver sits.
Y-first is what makes a matmul's activation routes broadcast along rows.

A router keeps one entry per color, so two routes that pass through the same router need different
colors; `assign_colors` colors the routes of a wafer with DSatur and fails when they need
more than the colors left after the memcpy infrastructure's. Link loads count the wavelets each
directed link carries per step (a multicast sends one copy per link); the busiest link bounds how fast
the step can stream, since a link moves one wavelet per cycle per direction.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

NORTH, SOUTH, EAST, WEST, RAMP = "N", "S", "E", "W", "R"
_STEP = {NORTH: (-1, 0), SOUTH: (1, 0), EAST: (0, 1), WEST: (0, -1)}
OPPOSITE = {NORTH: SOUTH, SOUTH: NORTH, EAST: WEST, WEST: EAST}

Coord = tuple[int, int]  # (row, column); rows grow southward, columns eastward


def at_text(at: Coord) -> str:
    return f"({at[0]},{at[1]})"


def neighbor(at: Coord, direction: str) -> Coord:
    dr, dc = _STEP[direction]
    return at[0] + dr, at[1] + dc


def yx_path(src: Coord, dst: Coord) -> list[Coord]:
    """Routers from `src` to `dst`, both included: along the column first, then along the row."""
    path = [src]
    row, col = src
    while row != dst[0]:
        row += 1 if dst[0] > row else -1
        path.append((row, col))
    while col != dst[1]:
        col += 1 if dst[1] > col else -1
        path.append((row, col))
    return path


def direction(a: Coord, b: Coord) -> str:
    for name, (dr, dc) in _STEP.items():
        if (a[0] + dr, a[1] + dc) == b:
            return name
    raise ValueError(f"{a} and {b} are not neighbours")


@dataclass
class RouterEntry:
    """One router's table entry for one color: where the wavelets come from and where they go."""

    input: str
    outputs: set[str] = field(default_factory=set)


@dataclass
class Route:
    channel: int
    src: Coord
    dests: list[Coord]
    wavelets: int  # per step
    entries: dict[Coord, RouterEntry]
    color: int | None = None
    purpose: str = ""

    @property
    def routers(self) -> list[Coord]:
        return list(self.entries)

    def links(self) -> list[tuple[Coord, str]]:
        """Directed links the route uses: (router, output direction), ramps excluded."""
        return [(at, out) for at, entry in self.entries.items() for out in sorted(entry.outputs) if out != RAMP]

    @property
    def hops(self) -> int:
        """Links from the sender to its farthest receiver."""
        return max((abs(d[0] - self.src[0]) + abs(d[1] - self.src[1]) for d in self.dests), default=0)

    def path_text(self, limit: int = 6) -> str:
        """The path to the farthest receiver as router coordinates, shortened in the middle."""
        far = max(self.dests, key=lambda d: (abs(d[0] - self.src[0]) + abs(d[1] - self.src[1]), d))
        corners = [self.src]
        path = yx_path(self.src, far)
        for before, at, after in zip(path, path[1:], path[2:]):
            if direction(before, at) != direction(at, after):
                corners.append(at)
        if far != self.src:
            corners.append(far)
        text = " -> ".join(at_text(c) for c in corners[:limit])
        return text + (" -> ..." if len(corners) > limit else "")


def build_route(channel: int, src: Coord, dests: list[Coord], wavelets: int, purpose: str = "") -> Route:
    entries: dict[Coord, RouterEntry] = {src: RouterEntry(RAMP)}
    for dest in dests:
        path = yx_path(src, dest)
        for a, b in zip(path, path[1:]):
            out = direction(a, b)
            entries[a].outputs.add(out)
            incoming = OPPOSITE[out]
            if b in entries and entries[b].input != incoming:
                raise AssertionError(f"route of channel {channel} enters {b} from two sides")
            entries.setdefault(b, RouterEntry(incoming))
        entries[dest].outputs.add(RAMP)
    return Route(channel, src, list(dests), wavelets, entries, purpose=purpose)


@dataclass(frozen=True)
class FabricLoad:
    """Per-step traffic of the routes of one wafer."""

    link_wavelets: dict[tuple[Coord, str], int]  # directed link -> wavelets per step
    ramp_in: dict[Coord, int]  # wavelets a PE's compute engine injects
    ramp_out: dict[Coord, int]  # wavelets delivered to a PE's compute engine

    @property
    def max_link(self) -> int:
        return max(self.link_wavelets.values(), default=0)

    @property
    def busiest(self) -> tuple[tuple[Coord, str], int] | None:
        if not self.link_wavelets:
            return None
        link = max(sorted(self.link_wavelets), key=self.link_wavelets.__getitem__)
        return link, self.link_wavelets[link]

    @property
    def wavelet_hops(self) -> int:
        return sum(self.link_wavelets.values())


def fabric_load(routes: list[Route]) -> FabricLoad:
    links: dict[tuple[Coord, str], int] = defaultdict(int)
    ramp_in: dict[Coord, int] = defaultdict(int)
    ramp_out: dict[Coord, int] = defaultdict(int)
    for route in routes:
        for link in route.links():
            links[link] += route.wavelets
        ramp_in[route.src] += route.wavelets
        for dest in route.dests:
            ramp_out[dest] += route.wavelets
    return FabricLoad(dict(links), dict(ramp_in), dict(ramp_out))


def _neighbours(routes: list[Route]) -> list[set[int]]:
    """For each route, the routes that share a router with it."""
    by_router: dict[Coord, list[int]] = defaultdict(list)
    for index, route in enumerate(routes):
        for router in route.entries:
            by_router[router].append(index)
    neighbours: list[set[int]] = [set() for _ in routes]
    for sharing in by_router.values():
        if len(sharing) > 1:
            for index in sharing:
                neighbours[index].update(sharing)
    for index, found in enumerate(neighbours):
        found.discard(index)
    return neighbours


def assign_colors(routes: list[Route], available: int) -> int | None:
    """Give each route a color in 0..available-1 so that routes sharing a router differ (DSatur: color
    next the route whose neighbours already use the most colors); returns the number of colors used, or
    None, leaving the routes unchanged, when `available` are not enough."""
    neighbours = _neighbours(routes)
    colors = [-1] * len(routes)
    saturation: list[set[int]] = [set() for _ in routes]
    uncolored = set(range(len(routes)))
    while uncolored:
        index = max(uncolored, key=lambda j: (len(saturation[j]), len(neighbours[j]), -j))
        color = next(c for c in range(len(routes) + 1) if c not in saturation[index])
        if color >= available:
            return None
        colors[index] = color
        uncolored.remove(index)
        for other in neighbours[index]:
            saturation[other].add(color)
    for route, color in zip(routes, colors):
        route.color = color
    return max(colors, default=-1) + 1


class WaferColors:
    """The colors of one wafer's routes, grown route by route: a new route takes the smallest color
    free at every router it passes (first fit); when none is, all routes are recolored with DSatur."""

    def __init__(self, available: int) -> None:
        self.available = available
        self.routes: list[Route] = []
        self.used_at: dict[Coord, set[int]] = defaultdict(set)

    @property
    def used(self) -> int:
        return max((r.color for r in self.routes), default=-1) + 1

    def add(self, new: list[Route]) -> bool:
        """Color `new` beside the routes already here; False (nothing changed) if they do not fit."""
        chosen = []
        taken: dict[Coord, set[int]] = defaultdict(set)
        for route in new:
            busy = set().union(*(self.used_at.get(at, set()) | taken.get(at, set()) for at in route.entries))
            color = next((c for c in range(self.available) if c not in busy), None)
            if color is None:
                break
            chosen.append(color)
            for at in route.entries:
                taken[at].add(color)
        if len(chosen) == len(new):
            for route, color in zip(new, chosen):
                route.color = color
            self._keep(new)
            return True
        previous = [r.color for r in self.routes]
        if assign_colors(self.routes + new, self.available) is None:
            for route, color in zip(self.routes, previous):
                route.color = color
            return False
        self.used_at = defaultdict(set)
        self._keep(self.routes + new, replace=True)
        return True

    def _keep(self, routes: list[Route], replace: bool = False) -> None:
        if replace:
            self.routes = list(routes)
        else:
            self.routes.extend(routes)
        for route in routes:
            for at in route.entries:
                self.used_at[at].add(route.color)


def router_tables(routes: list[Route]) -> dict[Coord, dict[int, RouterEntry]]:
    """Each router's color table; AssertionError if two routes claim one color at one router."""
    tables: dict[Coord, dict[int, RouterEntry]] = defaultdict(dict)
    for route in routes:
        if route.color is None:
            raise AssertionError(f"channel {route.channel} has no color")
        for at, entry in route.entries.items():
            if route.color in tables[at]:
                raise AssertionError(f"color {route.color} used twice at router {at}")
            tables[at][route.color] = entry
    return dict(tables)

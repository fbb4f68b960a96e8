"""The `.wse` listing: a placed wafer program as people read it.

For each wafer: the regions (what each computes, its rectangle of PEs and the busiest PE's memory),
the routes (color, sender, receivers, hops, wavelets per step, the path to the farthest receiver) and
the busiest link; then, region by region, the program of one PE per role (a matmul region's top,
middle and bottom rows differ: only the bottom row applies the epilogue) with the PEs that run the
same instruction sequence on their own elements. Channels print as the colors routing gave them.
The listing is deterministic: the same program gives the same text.
"""

from __future__ import annotations

from collections import defaultdict

from targets.wse.layout import WaferProgram
from targets.wse.routing import at_text, fabric_load


def listing(program: WaferProgram, target: str) -> str:
    machine = program.machine
    graph = program.graph
    colors = program.colors()
    lines = [
        f"; Niche wafer-scale program '{graph.name}' for {target} ({machine.description})",
        f"; mesh {machine.mesh_height}x{machine.mesh_width} PEs (rows x columns, row 0 north, column 0 west); "
        f"{machine.usable_bytes_per_pe:,} B usable per PE ({machine.sram_per_pe:,} B SRAM - "
        f"{machine.code_reserve:,} B code and buffers); {machine.usable_colors} colors ({machine.colors} - "
        f"{machine.reserved_colors} kept by memcpy)",
        f"; weights {program.mode}: " + ("loaded into their PEs once, at configuration" if program.mode == "resident"
                                         else "streamed from MemoryX over the I/O every step"),
        f"; {len(program.wafers)} wafer(s) in a pipeline, {len(program.placed)} regions, "
        f"{sum(len(w.routes) for w in program.wafers)} routes; routes are Y-then-X (column first, then row)",
        "",
    ]
    placed = {p.code.region.id: p for p in program.placed}
    for wafer in program.wafers:
        used_pes = sum(placed[r].code.grid[0] * placed[r].code.grid[1] for r in wafer.regions)
        load = wafer.load or fabric_load(wafer.routes)
        busiest = load.busiest
        busy = (f"; busiest link {at_text(busiest[0][0])}{busiest[0][1]} carries {busiest[1]} wavelets per step"
                if busiest else "; no fabric traffic")
        lines.append(f"== wafer {wafer.index}: {len(wafer.regions)} regions on {used_pes} of {machine.mesh_pes} PEs, "
                     f"{wafer.colors_used} of {machine.usable_colors} colors{busy}, "
                     f"{load.wavelet_hops} wavelet-hops per step")
        lines.append("")
        lines.append("regions")
        lines.append(f"  {'id':<5} {'kind':<7} {'grid':<6} {'at':<9} {'peak B/PE':>10}  what")
        for region_id in wafer.regions:
            here = placed[region_id]
            region = here.code.region
            peak = max(program.programs[(wafer.index, here.at(pe))].peak_bytes() for pe in here.code.pes)
            grid = f"{here.code.grid[0]}x{here.code.grid[1]}"
            at = f"({here.origin[0]},{here.origin[1]})"
            lines.append(f"  r{region.id:<4} {region.kind:<7} {grid:<6} {at:<9} {peak:>10,}  {region.label}")
            lines.append(f"  {'':<31}{here.code.detail}")
        lines.append("")
        lines.append("routes")
        lines.append(f"  {'color':<6} {'ch':<6} {'from':<10} {'receivers':<10} {'hops':>4} {'wavelets':>8}  path; purpose")
        lines.extend(_route_lines(wafer.routes))
        lines.append("")
        lines.append("programs")
        for region_id in wafer.regions:
            lines.extend(_region_programs(program, placed[region_id], wafer.index, colors))
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _route_lines(routes: list) -> list[str]:
    """One line per route; routes of one color and one purpose beyond three (the partial-sum hops of
    a matmul's columns) share a line."""
    groups: dict[tuple[int, str], list] = defaultdict(list)
    for route in sorted(routes, key=lambda r: (r.color, r.channel)):
        groups[(route.color, route.purpose.split(", column")[0])].append(route)
    lines = []
    for (color, purpose), members in groups.items():
        if len(members) <= 3:
            for route in members:
                receivers = f"{len(route.dests)} PE" + ("s" if len(route.dests) > 1 else "")
                lines.append(f"  c{color:<5} ch{route.channel:<4} {at_text(route.src):<10} {receivers:<10} "
                             f"{route.hops:>4} {route.wavelets:>8}  {route.path_text()}; {route.purpose}")
            continue
        hops = sorted({r.hops for r in members})
        wavelets = sorted({r.wavelets for r in members})
        span = f"{hops[0]}" if len(hops) == 1 else f"{hops[0]}-{hops[-1]}"
        amount = f"{wavelets[0]}" if len(wavelets) == 1 else f"{wavelets[0]}-{wavelets[-1]}"
        senders = ", ".join(at_text(r.src) for r in members[:4]) + (", ..." if len(members) > 4 else "")
        lines.append(f"  c{color:<5} {len(members)} routes from {senders}: {span} hop(s), {amount} wavelets each; "
                     f"{purpose}")
    return lines


def _region_programs(program: WaferProgram, here, wafer: int, colors: dict[int, int]) -> list[str]:
    region = here.code.region
    rows, cols = here.code.grid
    first, last = here.at((0, 0)), here.at((rows - 1, cols - 1))
    lines = [f"  region r{region.id} ({region.kind}: {region.label}), PEs {at_text(first)}..{at_text(last)}, "
             f"grid {rows}x{cols}"]
    by_shape: dict[tuple, list] = defaultdict(list)
    for pe in sorted(here.code.pes):
        pe_program = program.programs[(wafer, here.at(pe))]
        by_shape[(pe_program.role, pe_program.signature())].append(pe_program)
    for (role, _), members in by_shape.items():
        shown = members[0]
        others = [at_text(m.pe) for m in members[1:]]
        same = ""
        if others:
            listed = ", ".join(others[:6]) + (f", ... ({len(others)} in all)" if len(others) > 6 else "")
            same = f"; the same on their own elements: {listed}"
        lines.append(f"    PE{at_text(shown.pe)} [{role}] peak {shown.peak_bytes():,} B, {shown.cycles:,.0f} cycles{same}")
        for index, instr in enumerate(shown.instrs):
            cycles = f"  ; {instr.cycles:,.0f} cyc" if instr.cycles else ""
            lines.append(f"      {index:>3}  {instr.text(colors)}{cycles}")
    return lines

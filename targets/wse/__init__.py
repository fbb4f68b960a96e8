"""The wafer-scale target: a Cerebras WSE-style 2D mesh of processing elements (PEs).

Each fused group of the program becomes a region: a rectangle of PEs that holds its weights in PE
memory and computes on the data that flows into it over the fabric. Modules, in pipeline order:

* `machine` — the machine model (published figures and the assumptions, in one place).
* `regions` — the program cut into regions (fusion groups, or single ops), from shapes only.
* `indexing`, `local_plan` — which elements of which value each PE needs, and its local computation.
* `isa`, `codegen`, `sparsity` — the per-PE instruction set, the programs of a region's PEs, and how
  many weights a PE stores and fires on.
* `routing`, `layout` — dimension-ordered routes, link loads, colors; placement on wafers and linking.
* `simulator` — runs the per-PE programs and the routed wavelets (the functional check).
* `listing`, `plot` — the readable `.wse` listing and the picture of the wafer.
* `analysis`, `pricing`, `cost` — the analytical model behind `estimate` (never lays out, simulates or
  allocates the program's tensors).
* `target` — `WseTarget` and its artifact.

docs/targets/wse.md describes the model, the listing, the picture and the assumptions.
"""

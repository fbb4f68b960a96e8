"""The LPU target: a Groq Tensor Streaming Processor (TSP) modelled as published, with a static,
cycle-level schedule and a simulator that executes it (docs/targets/lpu.md).

Modules, in pipeline order:

* `machine`       the chip: slices, their positions on the stream axis, units, latencies (from the spec);
* `vectors`       a tensor as 320-lane vectors (padding, transposed weights, keepdims storage);
* `plan`          which values live in MEM and which are computed on the fly; the stages (on the graph
                  with its lookups precomputed, `targets.frozen_graph`);
* `partition`     chips needed and which chip runs what (layer pipeline, tensor parallel), or a refusal;
* `allocate`, `homes`: MEM slices and addresses, and copies between chips over C2C links;
* `views`, `jobs`, `trees`: instruction trees computing one vector each;
* `lower_compute`, `lower_reduce`, `lower_matmul`: each kind of stage lowered to jobs;
* `schedule`      the list scheduler with reservation tables per unit, port, stream and link;
* `build`         graph -> scheduled program;
* `isa`, `program`, `listing`: the instructions, the program, and the `.lpu` text printed and parsed back;
* `simulator`     executes a program cycle by cycle with numpy;
* `counting`, `estimate`: instruction counts without lowering, and the cost report;
* `target`        the `lpu` target behind the common protocol.
"""

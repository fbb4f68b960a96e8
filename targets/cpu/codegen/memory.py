"""Loads and stores: element offsets, and in vector loops the choice of access per `access.lane_stride`.

| lane stride | load                                  | store                                        |
|-------------|---------------------------------------|----------------------------------------------|
| 0 (uniform) | one scalar load                       | scalar store; a varying value stores lane by lane |
| 1           | vector load (masked under an `if`)    | vector store (masked; locals: load-select-store) |
| other       | gather: per-lane loads + insertelement | scatter: per-lane stores in lane order       |

Masked-off lanes of a gather read element 0 instead of their own index, so a guarded tail never reads
out of bounds; masked scatters branch per lane. Lane-private locals (`BufferRef.lanes`) are laid out
element-major, lane-minor. Storage <-> compute conversions are in `conversions`.
"""

from __future__ import annotations

from llvmlite import ir

from ir.loops import Expr, Load, Store, linear_index
from targets.cpu.codegen import conversions
from targets.cpu.codegen.access import lane_stride
from targets.cpu.codegen.context import BufferRef
from targets.cpu.codegen.helpers import constant, intrinsic
from targets.cpu.codegen.lltypes import I32, I64, storage_type


class MemoryEmitter:
    """Mixin of `FunctionEmitter`: needs `builder`, `buffers`, `vector`, `emit_expr`, `emit_lane0`."""

    def _buffer(self, name: str) -> BufferRef:
        try:
            return self.buffers[name]
        except KeyError:
            raise KeyError(f"loop IR buffer '{name}' is not a parameter or a local in scope") from None

    def _pointer(self, ref: BufferRef, offset: ir.Value) -> ir.Value:
        element = storage_type(ref.buffer.dtype)
        return self.builder.gep(ref.pointer, [offset], inbounds=True, source_etype=element)

    def _alignment(self, ref: BufferRef) -> int:
        return ref.buffer.dtype.itemsize

    # -- loads ---------------------------------------------------------------------------------

    def emit_load(self, load: Load) -> ir.Value:
        ref = self._buffer(load.buffer)
        offset = linear_index(load.indices, ref.buffer.element_strides)
        if self.vector is None:
            if ref.lanes is not None:
                raise AssertionError(f"lane-private buffer '{load.buffer}' read outside its vector loop")
            raw = self.builder.load(self._pointer(ref, self.emit_expr(offset)),
                                    typ=storage_type(load.dtype), align=self._alignment(ref))
            return conversions.from_storage(self.builder, raw, load.dtype)
        raw = self._vector_load(ref, offset)
        return conversions.from_storage(self.builder, raw, load.dtype)

    def _vector_load(self, ref: BufferRef, offset: Expr) -> ir.Value:
        vector = self.vector
        b = self.builder
        element = storage_type(ref.buffer.dtype)
        vector_type = ir.VectorType(element, vector.lanes)
        stride = lane_stride(offset, vector.var, vector.step, vector.varying)
        if ref.lanes is not None:  # lane-private: element-major, lane-minor
            if stride == 0:
                base = b.mul(self.emit_expr(offset), constant(I64, vector.lanes))
                return self._contiguous_load(ref, base, vector_type)
            offsets = self._vector_offsets(offset)
            offsets = b.add(b.mul(offsets, constant(offsets.type, vector.lanes)), self.lane_indices())
            return self._gather(ref, offsets, vector_type)
        if stride == 0:
            return b.load(self._pointer(ref, self.emit_expr(offset)), typ=element, align=self._alignment(ref))
        if stride == 1:
            return self._contiguous_load(ref, self.emit_lane0(offset), vector_type)
        return self._gather(ref, self._vector_offsets(offset), vector_type)

    def _contiguous_load(self, ref: BufferRef, base: ir.Value, vector_type: ir.VectorType) -> ir.Value:
        b = self.builder
        pointer = self._pointer(ref, base)
        mask = self.vector.mask
        if mask is None:
            return b.load(pointer, typ=vector_type, align=self._alignment(ref))
        function = intrinsic(b.module, "llvm.masked.load", vector_type,
                             [pointer.type, I32, mask.type, vector_type], [vector_type, pointer.type])
        return b.call(function, [pointer, ir.Constant(I32, self._alignment(ref)), mask,
                                 ir.Constant(vector_type, None)])

    def _vector_offsets(self, offset: Expr) -> ir.Value:
        value = self.emit_expr(offset)
        return self.broadcast(value, self.vector.lanes)

    def _gather(self, ref: BufferRef, offsets: ir.Value, vector_type: ir.VectorType) -> ir.Value:
        b = self.builder
        mask = self.vector.mask
        result = ir.Constant(vector_type, ir.Undefined)
        for lane in range(vector_type.count):
            index = ir.Constant(I32, lane)
            offset = b.extract_element(offsets, index)
            if mask is not None:  # an inactive lane reads element 0, which always exists
                offset = b.select(b.extract_element(mask, index), offset, constant(I64, 0))
            value = b.load(self._pointer(ref, offset), typ=vector_type.element, align=self._alignment(ref))
            result = b.insert_element(result, value, index)
        return result

    # -- stores --------------------------------------------------------------------------------

    def emit_store(self, store: Store) -> None:
        ref = self._buffer(store.buffer)
        dtype = ref.buffer.dtype
        offset = linear_index(store.indices, ref.buffer.element_strides)
        value = conversions.to_storage(self.builder, self.emit_expr(store.value), dtype)
        if self.vector is None:
            if ref.lanes is not None:
                raise AssertionError(f"lane-private buffer '{store.buffer}' written outside its vector loop")
            self.builder.store(value, self._pointer(ref, self.emit_expr(offset)), align=self._alignment(ref))
            return
        self._vector_store(ref, offset, value)

    def _vector_store(self, ref: BufferRef, offset: Expr, value: ir.Value) -> None:
        vector = self.vector
        b = self.builder
        stride = lane_stride(offset, vector.var, vector.step, vector.varying)
        if ref.lanes is not None:
            value = self.broadcast(value, vector.lanes)
            if stride == 0:
                base = b.mul(self.emit_expr(offset), constant(I64, vector.lanes))
                self._contiguous_store(ref, base, value)
                return
            offsets = self._vector_offsets(offset)
            offsets = b.add(b.mul(offsets, constant(offsets.type, vector.lanes)), self.lane_indices())
            self._scatter(ref, offsets, value)
            return
        if stride == 0 and vector.mask is None and not isinstance(value.type, ir.VectorType):
            b.store(value, self._pointer(ref, self.emit_expr(offset)), align=self._alignment(ref))
            return
        value = self.broadcast(value, vector.lanes)
        if stride == 1:
            self._contiguous_store(ref, self.emit_lane0(offset), value)
            return
        self._scatter(ref, self._vector_offsets(offset), value)

    def _contiguous_store(self, ref: BufferRef, base: ir.Value, value: ir.Value) -> None:
        b = self.builder
        pointer = self._pointer(ref, base)
        mask = self.vector.mask
        align = self._alignment(ref)
        if mask is None:
            b.store(value, pointer, align=align)
        elif ref.local:  # read-modify-write keeps the buffer promotable to registers
            old = b.load(pointer, typ=value.type, align=align)
            b.store(b.select(mask, value, old), pointer, align=align)
        else:
            function = intrinsic(b.module, "llvm.masked.store", ir.VoidType(),
                                 [value.type, pointer.type, I32, mask.type], [value.type, pointer.type])
            b.call(function, [value, pointer, ir.Constant(I32, align), mask])

    def _scatter(self, ref: BufferRef, offsets: ir.Value, value: ir.Value) -> None:
        b = self.builder
        mask = self.vector.mask
        for lane in range(value.type.count):
            index = ir.Constant(I32, lane)
            pointer = self._pointer(ref, b.extract_element(offsets, index))
            element = b.extract_element(value, index)
            if mask is None:
                b.store(element, pointer, align=self._alignment(ref))
            else:
                with b.if_then(b.extract_element(mask, index)):
                    b.store(element, pointer, align=self._alignment(ref))


"""Element types of Niche tensors and their numpy counterparts.

bf16 has no numpy dtype. Niche stores bf16 values in float32 containers whose values are exactly
representable in bf16: every bf16 result is rounded from f32 with round-to-nearest-even on the upper
16 bits (NaN stays NaN). `round_bf16` is that rounding and the one place it is defined.
"""

from __future__ import annotations

import enum

import numpy as np


class DType(enum.Enum):
    F32 = "f32"
    F64 = "f64"
    F16 = "f16"
    BF16 = "bf16"
    I8 = "i8"
    I32 = "i32"
    I64 = "i64"
    BOOL = "bool"

    # Members are singletons that compare by identity (an Enum defines no __eq__), so the identity hash
    # agrees with equality. Enum's own __hash__ hashes the name in Python code, on every dict and set
    # lookup of a dtype or of a type that holds one.
    __hash__ = object.__hash__

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:
        return f"DType.{self.name}"

    @property
    def is_float(self) -> bool:
        return self in FLOAT_DTYPES

    @property
    def is_int(self) -> bool:
        return self in INT_DTYPES

    @property
    def is_bool(self) -> bool:
        return self is DType.BOOL

    @property
    def bits(self) -> int:
        return _BITS[self]

    @property
    def itemsize(self) -> int:
        """Bytes per element in Niche's own storage (bf16 is 2 bytes on every target)."""
        return _ITEMSIZE[self]  # asked for every value whose bytes are counted: looked up, not computed

    @property
    def numpy(self) -> np.dtype:
        """The numpy dtype that holds values of this type at the Python boundary."""
        return np.dtype(_NUMPY[self])


FLOAT_DTYPES = frozenset({DType.F32, DType.F64, DType.F16, DType.BF16})
INT_DTYPES = frozenset({DType.I8, DType.I32, DType.I64})

_BY_NAME = {dtype.value: dtype for dtype in DType}
_BITS = {
    DType.F32: 32, DType.F64: 64, DType.F16: 16, DType.BF16: 16,
    DType.I8: 8, DType.I32: 32, DType.I64: 64, DType.BOOL: 1,
}
_ITEMSIZE = {dtype: max(1, bits // 8) for dtype, bits in _BITS.items()}
_NUMPY = {
    DType.F32: np.float32, DType.F64: np.float64, DType.F16: np.float16, DType.BF16: np.float32,
    DType.I8: np.int8, DType.I32: np.int32, DType.I64: np.int64, DType.BOOL: np.bool_,
}

# Promotion when two tensors of different dtypes meet in an arithmetic operator of the source language.
# Floats win over integers and the wider type wins within a kind, as in JAX (numpy would turn f32 + i32
# into f64, which no accelerator user wants); bf16 with f16 gives f32.
_FLOAT_RANK = {DType.F16: 1, DType.BF16: 1, DType.F32: 2, DType.F64: 3}
_INT_RANK = {DType.I8: 1, DType.I32: 2, DType.I64: 3}


def parse_dtype(name: str) -> DType | None:
    if type(name) is str:  # DType(name) looks a string up among the values, as this does without raising
        return _BY_NAME.get(name)
    try:
        return DType(name)
    except ValueError:
        return None


def promote(a: DType, b: DType) -> DType:
    """The common dtype of two tensor operands (numpy rules, bf16 as in JAX)."""
    if a == b:
        return a
    if a.is_bool:
        return b
    if b.is_bool:
        return a
    if a.is_float and b.is_float:
        if _FLOAT_RANK[a] == _FLOAT_RANK[b]:  # f16 with bf16
            return DType.F32
        return a if _FLOAT_RANK[a] > _FLOAT_RANK[b] else b
    if a.is_float:
        return a
    if b.is_float:
        return b
    return a if _INT_RANK[a] > _INT_RANK[b] else b


def round_bf16(values: np.ndarray) -> np.ndarray:
    """Round float values to the nearest bf16 (ties to even) and return them as float32."""
    shape = np.shape(values)
    f32 = np.array(values, dtype=np.float32, copy=True, order="C").reshape(-1)  # 1-d: ops stay arrays
    bits = f32.view(np.uint32)
    rounding_bias = ((bits >> 16) & 1) + np.uint32(0x7FFF)
    rounded = ((bits + rounding_bias) & np.uint32(0xFFFF0000)).astype(np.uint32)
    nan = np.isnan(f32)
    if nan.any():
        rounded = np.where(nan, np.uint32(0x7FC00000), rounded)
    return rounded.view(np.float32).reshape(shape)


def to_numpy(values: np.ndarray, dtype: DType) -> np.ndarray:
    """Convert `values` to the numpy container of `dtype`, rounding for bf16."""
    if dtype is DType.BF16:
        return round_bf16(values)
    return np.asarray(values).astype(dtype.numpy, copy=False)

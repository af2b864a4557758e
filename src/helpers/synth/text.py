"""Fast, vectorised text: ISO dates, hex hashes, URLs and decimals written as ASCII bytes."""
from __future__ import annotations


import numpy as np
import pyarrow as pa
from .params import STREAM_USERS, URL_PREFIX, URL_SUFFIX
from .plan import seeded_rng


# --------------------------------------------------------------------------- fast text
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_DIGITS = np.frombuffer(b"0123456789", dtype=np.uint8)


def fixed_width_strings(buf: np.ndarray) -> pa.StringArray:
    """Arrow strings from an (n, width) array of ASCII bytes, without a Python loop."""
    buf = np.ascontiguousarray(buf, dtype=np.uint8)
    n, width = buf.shape
    offsets = (np.arange(n + 1, dtype=np.int64) * width).astype(np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(buf.reshape(-1)))


def hex_bytes(raw: np.ndarray) -> np.ndarray:
    """(n, 2k) lower-case hex ASCII of (n, k) random bytes."""
    out = np.empty((raw.shape[0], raw.shape[1] * 2), dtype=np.uint8)
    out[:, 0::2] = _HEX[raw >> 4]
    out[:, 1::2] = _HEX[raw & 15]
    return out


def _put_digits(buf: np.ndarray, col: int, values: np.ndarray, width: int) -> None:
    """Write zero-padded decimal ``values`` into ``buf[:, col:col+width]``."""
    for k in range(width - 1, -1, -1):
        buf[:, col + k] = _DIGITS[values % 10]
        values = values // 10


def iso_utc_ms(ms: np.ndarray) -> pa.StringArray:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` strings of epoch milliseconds (vectorised)."""
    t = ms.astype("datetime64[ms]")
    day = t.astype("datetime64[D]")
    month = t.astype("datetime64[M]")
    year = t.astype("datetime64[Y]")
    in_day = ms - day.astype("datetime64[ms]").astype(np.int64)
    buf = np.empty((len(ms), 24), dtype=np.uint8)
    _put_digits(buf, 0, year.astype(np.int64) + 1970, 4)
    _put_digits(buf, 5, (month - year.astype("datetime64[M]")).astype(np.int64) + 1, 2)
    _put_digits(buf, 8, (day - month.astype("datetime64[D]")).astype(np.int64) + 1, 2)
    _put_digits(buf, 11, in_day // 3_600_000, 2)
    _put_digits(buf, 14, in_day // 60_000 % 60, 2)
    _put_digits(buf, 17, in_day // 1_000 % 60, 2)
    _put_digits(buf, 20, in_day % 1_000, 3)
    for col, char in ((4, "-"), (7, "-"), (10, "T"), (13, ":"), (16, ":"), (19, "."), (23, "Z")):
        buf[:, col] = ord(char)
    return fixed_width_strings(buf)


def fake_image_urls(rng: np.random.Generator, n: int) -> pa.StringArray:
    """``https://image.civitai.invalid/<uuid>.jpeg`` with random uuid-shaped names."""
    hexes = hex_bytes(rng.integers(0, 256, size=(n, 16), dtype=np.uint8))
    start = len(URL_PREFIX)
    buf = np.empty((n, start + 36 + len(URL_SUFFIX)), dtype=np.uint8)
    buf[:, :start] = np.frombuffer(URL_PREFIX, np.uint8)
    buf[:, start:start + 36] = ord("-")
    for dst, src, width in ((0, 0, 8), (9, 8, 4), (14, 12, 4), (19, 16, 4), (24, 20, 12)):
        buf[:, start + dst:start + dst + width] = hexes[:, src:src + width]
    buf[:, start + 36:] = np.frombuffer(URL_SUFFIX, np.uint8)
    return fixed_width_strings(buf)


def user_hash_pool(seed: int, n_users: int) -> pa.StringArray:
    """``n_users`` distinct-looking 16-hex-digit user hashes (the pool creators are drawn from)."""
    rng = seeded_rng(seed, STREAM_USERS)
    return fixed_width_strings(hex_bytes(rng.integers(0, 256, size=(n_users, 8), dtype=np.uint8)))


def zipf_cdf(n: int, exponent: float) -> np.ndarray:
    """Cumulative Zipf weights of ranks 1..n (rank 1 most active)."""
    return np.cumsum(np.arange(1, n + 1, dtype=np.float64) ** -exponent)


def sample_zipf(rng: np.random.Generator, cdf: np.ndarray, size: int) -> np.ndarray:
    """Ranks (0-based) drawn from a Zipf CDF."""
    return np.minimum(np.searchsorted(cdf, rng.random(size) * cdf[-1], side="right"), len(cdf) - 1)




# --------------------------------------------------------------------------- prompt lengths
def prompt_length_summary(prompts: pa.Array | pa.ChunkedArray) -> dict[str, float]:
    """Median, mean and 90th percentile of prompt length in characters, and commas per prompt,
    over the prompts that hold more than white space (how the generator is checked against
    real prompts)."""
    import pyarrow.compute as pc

    kept = prompts.drop_null()
    kept = kept.filter(pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(kept)), 0))
    if len(kept) == 0:
        raise ValueError("no prompt with text to summarise")
    lengths = pc.utf8_length(kept).to_numpy(zero_copy_only=False)
    commas = pc.count_substring(kept, ",").to_numpy(zero_copy_only=False)
    return {"prompts": float(len(lengths)), "median": float(np.median(lengths)),
            "mean": float(lengths.mean()), "p90": float(np.percentile(lengths, 90)),
            "commas": float(commas.mean())}

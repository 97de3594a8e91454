"""H.264 Annex B bitstream inspection: NAL units, and the fields of a sequence parameter
set (SPS) that a client needs: size, profile and level (the WebCodecs codec string), the
colour description of the VUI, and whether frames come out without reordering.

Example::

    >>> au = bytes.fromhex("00000001 6742c01e 00000001 68ce3c80 0000000165888480".replace(" ", ""))
    >>> [nal_type(n) for n in split_nal_units(au)]
    [7, 8, 5]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

NAL_SLICE = 1
NAL_IDR = 5
NAL_SEI = 6
NAL_SPS = 7
NAL_PPS = 8
NAL_AUD = 9

# VUI matrix_coefficients values (ITU-T H.273) and their names.
MATRIX_NAMES = {0: "rgb", 1: "bt709", 2: "unspecified", 4: "fcc", 5: "bt470bg",
                6: "smpte170m", 7: "smpte240m", 9: "bt2020nc", 10: "bt2020c"}


def split_nal_units(data: bytes | bytearray | memoryview) -> List[bytes]:
    """The NAL units of an Annex B byte stream (start codes 00 00 01 or 00 00 00 01
    removed, each unit starting with its NAL header byte)."""
    b = bytes(data)
    starts = []
    i, n = 0, len(b)
    while True:
        j = b.find(b"\x00\x00\x01", i)
        if j < 0:
            break
        starts.append(j + 3)
        i = j + 3
    units = []
    for k, s in enumerate(starts):
        end = starts[k + 1] - 3 if k + 1 < len(starts) else n
        unit = b[s:end]
        # A four-byte start code (or trailing_zero_8bits) leaves zeros at the end.
        unit = unit.rstrip(b"\x00") if k + 1 < len(starts) else unit
        if unit:
            units.append(unit)
    return units


def nal_type(unit: bytes) -> int:
    return unit[0] & 0x1F


def unescape(rbsp: bytes) -> bytes:
    """Removes emulation prevention bytes (00 00 03 -> 00 00)."""
    out = bytearray()
    zeros = 0
    for byte in rbsp:
        if zeros >= 2 and byte == 3:
            zeros = 0
            continue
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


class _Bits:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def u(self, n: int) -> int:
        v = 0
        for _ in range(n):
            byte = self.pos >> 3
            if byte >= len(self.data):
                raise ValueError("SPS ends early")
            v = (v << 1) | ((self.data[byte] >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return v

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("SPS has an Exp-Golomb code longer than 32 bits")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)


@dataclass(frozen=True)
class SPS:
    profile_idc: int
    constraint_flags: int
    level_idc: int
    width: int
    height: int
    chroma_format_idc: int = 1
    bit_depth: int = 8
    vui_present: bool = False
    full_range: bool = False
    colour_primaries: int = 2
    transfer_characteristics: int = 2
    matrix_coefficients: int = 2
    bitstream_restriction: bool = False
    max_num_reorder_frames: Optional[int] = None
    max_dec_frame_buffering: Optional[int] = None

    @property
    def codec_string(self) -> str:
        """The WebCodecs / RFC 6381 string ``avc1.PPCCLL``."""
        return f"avc1.{self.profile_idc:02X}{self.constraint_flags:02X}{self.level_idc:02X}"

    @property
    def matrix(self) -> str:
        return MATRIX_NAMES.get(self.matrix_coefficients, f"unknown({self.matrix_coefficients})")


def _skip_scaling_list(r: _Bits, size: int) -> None:
    last, nxt = 8, 8
    for _ in range(size):
        if nxt != 0:
            nxt = (last + r.se() + 256) % 256
        last = nxt if nxt != 0 else last


def _skip_hrd(r: _Bits) -> None:
    cpb_cnt = r.ue() + 1
    r.u(4)
    r.u(4)
    for _ in range(cpb_cnt):
        r.ue()
        r.ue()
        r.u(1)
    r.u(5)
    r.u(5)
    r.u(5)
    r.u(5)


def parse_sps(unit: bytes) -> SPS:
    """Parses an SPS NAL unit (with its header byte). Raises ValueError when it is not one
    or is truncated."""
    if not unit or nal_type(unit) != NAL_SPS:
        raise ValueError("not an SPS NAL unit")
    r = _Bits(unescape(unit[1:]))
    profile = r.u(8)
    constraints = r.u(8)
    level = r.u(8)
    r.ue()  # seq_parameter_set_id
    chroma, bit_depth, separate_planes = 1, 8, 0
    if profile in (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135):
        chroma = r.ue()
        if chroma == 3:
            separate_planes = r.u(1)
        bit_depth = r.ue() + 8
        r.ue()  # bit_depth_chroma_minus8
        r.u(1)  # qpprime_y_zero_transform_bypass_flag
        if r.u(1):  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma != 3 else 12):
                if r.u(1):
                    _skip_scaling_list(r, 16 if i < 6 else 64)
    r.ue()  # log2_max_frame_num_minus4
    poc_type = r.ue()
    if poc_type == 0:
        r.ue()
    elif poc_type == 1:
        r.u(1)
        r.se()
        r.se()
        for _ in range(r.ue()):
            r.se()
    r.ue()  # max_num_ref_frames
    r.u(1)  # gaps_in_frame_num_value_allowed_flag
    width_mbs = r.ue() + 1
    height_units = r.ue() + 1
    frame_mbs_only = r.u(1)
    if not frame_mbs_only:
        r.u(1)
    r.u(1)  # direct_8x8_inference_flag
    width = width_mbs * 16
    height = height_units * 16 * (2 - frame_mbs_only)
    if r.u(1):  # frame_cropping_flag
        left, right, top, bottom = r.ue(), r.ue(), r.ue(), r.ue()
        chroma_array = 0 if separate_planes else chroma
        sub_w = 2 if chroma_array in (1, 2) else 1
        sub_h = 2 if chroma_array == 1 else 1
        unit_x = sub_w if chroma_array else 1
        unit_y = (sub_h if chroma_array else 1) * (2 - frame_mbs_only)
        width -= unit_x * (left + right)
        height -= unit_y * (top + bottom)
    fields = dict(profile_idc=profile, constraint_flags=constraints, level_idc=level,
                  width=width, height=height, chroma_format_idc=chroma, bit_depth=bit_depth)
    if not r.u(1):  # vui_parameters_present_flag
        return SPS(**fields)
    fields["vui_present"] = True
    if r.u(1):  # aspect_ratio_info_present_flag
        if r.u(8) == 255:
            r.u(16)
            r.u(16)
    if r.u(1):  # overscan_info_present_flag
        r.u(1)
    if r.u(1):  # video_signal_type_present_flag
        r.u(3)
        fields["full_range"] = bool(r.u(1))
        if r.u(1):  # colour_description_present_flag
            fields["colour_primaries"] = r.u(8)
            fields["transfer_characteristics"] = r.u(8)
            fields["matrix_coefficients"] = r.u(8)
    if r.u(1):  # chroma_loc_info_present_flag
        r.ue()
        r.ue()
    if r.u(1):  # timing_info_present_flag
        r.u(32)
        r.u(32)
        r.u(1)
    nal_hrd = r.u(1)
    if nal_hrd:
        _skip_hrd(r)
    vcl_hrd = r.u(1)
    if vcl_hrd:
        _skip_hrd(r)
    if nal_hrd or vcl_hrd:
        r.u(1)  # low_delay_hrd_flag
    r.u(1)  # pic_struct_present_flag
    if r.u(1):  # bitstream_restriction_flag
        fields["bitstream_restriction"] = True
        r.u(1)
        r.ue()
        r.ue()
        r.ue()
        r.ue()
        fields["max_num_reorder_frames"] = r.ue()
        fields["max_dec_frame_buffering"] = r.ue()
    return SPS(**fields)


def find_sps(access_unit: bytes | bytearray | memoryview) -> Optional[SPS]:
    """The parsed SPS of an access unit, or None when it carries none."""
    for unit in split_nal_units(access_unit):
        if nal_type(unit) == NAL_SPS:
            return parse_sps(unit)
    return None

"""The committed protobuf modules equal a fresh ``protoc`` run over every proto/*.proto."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROTO_DIR = ROOT / "proto"
PB_DIR = ROOT / "goomerang_proto" / "pb"


def _protos() -> list[Path]:
    return sorted(PROTO_DIR.glob("*.proto"))


def test_there_are_protos() -> None:
    assert {"goomerang_example.proto", "goomerang_frame.proto"} <= {p.name for p in _protos()}


@pytest.mark.timeout(120)
def test_committed_modules_match_fresh_generation(tmp_path: Path) -> None:
    protos = _protos()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-Iproto",
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            *(p.relative_to(ROOT).as_posix() for p in protos),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=100,
    )
    generated = sorted(p.name for p in tmp_path.iterdir())
    expected = sorted(name for p in protos for name in (f"{p.stem}_pb2.py", f"{p.stem}_pb2.pyi"))
    assert generated == expected
    stale = [
        name
        for name in generated
        if not (PB_DIR / name).is_file()
        or (PB_DIR / name).read_bytes() != (tmp_path / name).read_bytes()
    ]
    assert not stale, f"run `make proto` and commit: {stale} differ from a fresh generation"


def test_no_orphan_generated_modules() -> None:
    stems = {p.stem for p in _protos()}
    orphans = [
        p.name
        for p in PB_DIR.iterdir()
        if p.name.endswith(("_pb2.py", "_pb2.pyi")) and p.name.split("_pb2")[0] not in stems
    ]
    assert not orphans, f"generated modules without a .proto: {orphans}"

"""Generate the Python gRPC stubs from protos/ into the `gatehouse` package.

The stubs are committed; tests/test_protos.py regenerates them into a temporary folder and fails
when the committed ones have drifted. Run `python scripts/gen_protos.py` after editing a .proto.
"""

from __future__ import annotations

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"


def proto_files() -> list[pathlib.Path]:
    return sorted(PROTOS.rglob("*.proto"))


def generate(out_dir: pathlib.Path) -> list[pathlib.Path]:
    """Compile every .proto under protos/ into out_dir; return the files written."""
    import grpc_tools
    from grpc_tools import protoc

    include = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    files = [str(p.relative_to(PROTOS)) for p in proto_files()]
    args = [
        "protoc",
        f"-I{PROTOS}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *files,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    written = []
    for rel in files:
        pkg_dir = out_dir / pathlib.Path(rel).parent
        # Every generated folder is a regular package so that setuptools ships it.
        for d in [pkg_dir, *pkg_dir.relative_to(out_dir).parents]:
            init = out_dir / d / "__init__.py" if not d.is_absolute() else d / "__init__.py"
            if not init.exists():
                init.write_text("")
        stem = pathlib.Path(rel).with_suffix("")
        for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"):
            written.append(out_dir / f"{stem}{suffix}")
    return written


if __name__ == "__main__":
    for path in generate(ROOT):
        print(path.relative_to(ROOT))
    sys.exit(0)

#!/usr/bin/env python3
"""Builds Python modules into a duro class component with componentize-py.

    build.py [--out FILE] [--wit DIR] MODULE.py ...

Every `DurableObject` subclass the modules define is in the component; deployed as class
`Counter`, it runs the one named `Counter` (one component can be deployed as several classes).
The component is rebuilt only when a module, the SDK, the WIT or componentize-py changed.
componentize-py is looked up beside this Python (requirements.txt pins it; scripts/setup-py-tools,
or a `duro init` project's build.sh, installs it).
"""

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SDK = Path(__file__).resolve().parent


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", "-o", required=True)
    # The WIT beside the SDK (a copy made by `duro init`), else this repository's.
    wit = SDK / "wit" if (SDK / "wit").is_dir() else SDK.parent.parent / "wit"
    parser.add_argument("--wit", default=str(wit))
    parser.add_argument("modules", nargs="+")
    args = parser.parse_args()
    modules = [Path(m).resolve() for m in args.modules]
    for m in modules:
        if m.suffix != ".py" or not m.is_file():
            sys.exit(f"error: {m} is not a Python module file")
    tool = shutil.which("componentize-py", path=str(Path(sys.executable).parent)) or shutil.which("componentize-py")
    if tool is None:
        sys.exit("error: componentize-py not found (scripts/setup-py-tools installs it)")
    version = subprocess.run([tool, "--version"], capture_output=True, text=True).stdout.strip()

    names = [m.stem for m in modules]
    app = "import wit_world\nfrom duro.object import object_world\n"
    app += "".join(f"import {n}\n" for n in names)
    app += f"WitWorld = object_world(wit_world.WitWorld, {', '.join(names)})\n"

    digest = hashlib.sha256(f"{version}\n{app}".encode())
    sources = sorted((SDK / "duro").glob("*.py")) + modules + sorted(Path(args.wit).glob("*.wit"))
    for path in sources:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    inputs = digest.hexdigest()
    out = Path(args.out).resolve()
    stamp = Path(f"{out}.inputs")
    if out.exists() and stamp.exists() and stamp.read_text() == inputs:
        print(f"{out}: up to date")
        return

    started = time.time()
    with tempfile.TemporaryDirectory(prefix="duro-py-") as work:
        Path(work, "app.py").write_text(app)
        paths = [work, str(SDK)] + sorted({str(m.parent) for m in modules})
        command = [tool, "-d", args.wit, "-w", "shared-instance", "componentize", "app"]
        for p in paths:
            command += ["-p", p]
        partial = f"{out}.partial"
        command += ["-o", partial]
        out.parent.mkdir(parents=True, exist_ok=True)
        print(f"componentizing {', '.join(names)} (shared-instance world)...", flush=True)
        result = subprocess.run(command)
        if result.returncode != 0:
            sys.exit(f"error: componentize-py failed (exit {result.returncode})")
        os.replace(partial, out)
    stamp.write_text(inputs)
    size = out.stat().st_size / 1048576
    print(f"{out}: {size:.1f} MiB in {time.time() - started:.1f} s")


if __name__ == "__main__":
    main()

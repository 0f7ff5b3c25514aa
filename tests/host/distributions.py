"""Installed distributions made by a test: a `.dist-info` folder (METADATA, entry_points.txt) and its modules, as
pip leaves them, on a folder put first on sys.path. importlib.metadata, and so pluggy's entry-point loading, finds
them exactly as it finds a real install; nothing is installed into the environment."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path


class Site:
    """A site folder on sys.path for one test (`installed` fixture); modules it imported are forgotten after."""

    def __init__(self, folder: Path, monkeypatch):
        self.folder, self.monkeypatch, self.modules = folder, monkeypatch, set()
        folder.mkdir(parents=True, exist_ok=True)
        monkeypatch.syspath_prepend(str(folder))

    def install(self, name: str, version: str, modules: dict[str, str], entry_points: dict[str, str]) -> None:
        """Distribution `name` `version`, whose `facemath` entry points (name -> module) load `modules`."""
        for module, source in modules.items():
            (self.folder / f"{module}.py").write_text(textwrap.dedent(source))
            self.modules.add(module)
            self.monkeypatch.delitem(sys.modules, module, raising=False)
        info = self.folder / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        lines = "".join(f"{ep} = {module}\n" for ep, module in entry_points.items())
        (info / "entry_points.txt").write_text(f"[facemath]\n{lines}")

    def forget(self) -> None:
        for module in self.modules:
            sys.modules.pop(module, None)

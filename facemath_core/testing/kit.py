"""The helpers of the test kit: contract checks of one component, the registry a command would build, the command
line run in this process, short runs on tiny models (`Kit`), and a backend's round trip against the embedded one."""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

import numpy as np

from facemath_core.base import signatures as S
from facemath_core.base.errors import FacemathError
from facemath_core.cli import main
from facemath_core.cli.app import state
from facemath_core.host import contracts
from facemath_core.host.backend import Backend
from facemath_core.host.components import Component
from facemath_core.host.manager import Registry, configure, load_registry
from facemath_core.host.schema import check_params
from facemath_core.latent.latents import Latents, load_latents
from facemath_core.models.architectures import z_bound
from facemath_core.serving.backends.embedded import EmbeddedBackend

PluginLike = str | Path | ModuleType


# --- one component --------------------------------------------------------------------------------------------


def check_component(
    component: Component,
    params: dict[str, Any] | None = None,
    *,
    models: str | Path | None = None,
    decoder: str = S.GENERATOR,
    image_size: int = 32,
    z_dim: int = 8,
    bound: float = 1.0,
    backend: Backend | None = None,
) -> None:
    """Run every contract of the component's kind, static and run time, exactly as a run checks it before its
    first step: a broken contract raises the `PluginError` (one line naming the component and its provider) that
    the run would print. `params` (text or values) go through the parameter schema as `--param` values do.

    The check inputs are shaped like `models` (a model folder: its decoder's image size, z size and prior box, and
    its backend for initialisers) or, without models, by `image_size`, `z_dim` and `bound`; an initialiser that
    needs models is then not run."""
    if models is not None and backend is None:
        backend = EmbeddedBackend(models)
    if backend is not None:
        meta = backend.metadata(decoder)
        image_size, z_dim, bound = meta["image_size"], meta["z_dim"], z_bound(meta["z_distribution"])
    typed = check_params(component, params or {})
    contracts.check_component(component, typed, contracts.Setting(image_size, z_dim, bound, backend, decoder))


def registry(*plugins: PluginLike, installed: bool = False) -> Registry:
    """The registry a command builds with these plugins named by `--plugin` (modules, module names or .py files):
    every component tagged with its provider, every static contract checked. `installed`: also every installed
    entry point, as the command line loads them (default: facemath's built-ins only, whatever else is installed).
    A plugin that cannot be loaded raises the PluginError a command would print."""
    return load_registry([_spec(p) for p in plugins], builtins_only=not installed)


def _spec(plugin: PluginLike) -> str:
    if isinstance(plugin, ModuleType):
        return plugin.__name__
    return str(plugin)


# --- the command line -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    """What one `facemath` command did: its exit code and everything it wrote."""

    code: int
    stdout: str
    stderr: str

    @property
    def error(self) -> str | None:
        """The `error:` line (without the prefix), or None."""
        lines = [line for line in self.stderr.splitlines() if line.startswith("error: ")]
        return lines[0].removeprefix("error: ") if lines else None


class CommandFailed(AssertionError):
    """A command a helper ran to get a result exited with an error; the message is its error line."""

    def __init__(self, result: Result, args: Sequence):
        self.result = result
        super().__init__(f"facemath {' '.join(map(str, args))} exited {result.code}: {result.error or result.stderr}")


def run(*args, plugins: Sequence[PluginLike] = (), env: dict[str, str] | None = None) -> Result:
    """`facemath ARGS` (with `--plugin` for each of `plugins`) in this process, through the real error boundary,
    as pytest's `pytester.runpytest_inprocess` runs pytest: exit code, stdout and stderr (no terminal: nothing is
    wrapped), `env` set for the call only."""
    from typer.testing import CliRunner  # the command line's own test runner (typer, not facemath)

    argv = ["facemath", *[a for p in plugins for a in ("--plugin", _spec(p))], *map(str, args)]
    runner = CliRunner()
    tf_logger = logging.getLogger("tensorflow")
    level = tf_logger.level  # main() quiets TensorFlow's logger for the process; put it back
    state["debug"] = False  # a fresh process starts without --debug
    with runner.isolation(env={"COLUMNS": "200", **(env or {})}) as (stdout, stderr, _):
        # main() silences warnings for the whole process, as the real command should; here it is one call's.
        with warnings.catch_warnings(), mock.patch.object(sys, "argv", argv):
            try:
                main()
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                tf_logger.setLevel(level)
                configure(())  # the next library call sees no --plugin of this command line
        out, err = stdout.getvalue(), stderr.getvalue()
    return Result(code, out.decode(runner.charset, "replace"), err.decode(runner.charset, "replace"))


# --- short runs on tiny models --------------------------------------------------------------------------------


class Kit:
    """Short runs of facemath on tiny models, with a plugin loaded: what the `facemath` fixture gives a test.

    `models` is a model folder (`tiny_models`), `faces` a face folder (`tiny_faces`), `workdir` where results go,
    `plugins` what each command loads with `--plugin` (an installed plugin is found through its entry point)."""

    def __init__(
        self, models: Path, faces: Path, workdir: Path, plugins: Sequence[PluginLike] = (), latents=None
    ) -> None:
        self.models, self.faces, self.workdir = Path(models), Path(faces), Path(workdir)
        self.plugins = list(plugins)
        self._latents = latents  # a latents.npz of the faces, or a function giving one (made on first use)
        self._runs = 0

    @property
    def images(self) -> list[Path]:
        return sorted((self.faces / "img_align_celeba").glob("*.png"))

    def _out(self, what: str) -> Path:
        self._runs += 1
        return self.workdir / f"{what}-{self._runs}"

    def run(self, *args, env: dict[str, str] | None = None) -> Result:
        """`facemath ARGS` with the kit's plugins; `--models` is yours to add (`kit.models`)."""
        return run(*args, plugins=self.plugins, env=env)

    def _succeed(self, *args) -> Result:
        result = self.run(*args)
        if result.code != 0:
            raise CommandFailed(result, args)
        return result

    def project(self, *args, images: Sequence[Path] | None = None, steps: int = 3) -> Latents:
        """`facemath project` of two faces (or `images`) for `steps` steps with extra `args` (`-l my-loss`,
        `--optimizer ...`, `--param ...`); the latents it wrote. A failure raises CommandFailed with its line."""
        out = self._out("projection")
        chosen = list(images) if images is not None else self.images[:2]
        self._succeed("project", *chosen, "--models", self.models, "--steps", steps, "-o", out, *args)
        return load_latents(out / "latents.npz")

    def complete(self, *args, images: Sequence[Path] | None = None, steps: int = 3) -> Path:
        """`facemath complete` (the center mask by default): the result folder, with `completions/`."""
        out = self._out("completion")
        chosen = list(images) if images is not None else self.images[:2]
        self._succeed("complete", *chosen, "--models", self.models, "--steps", steps, "-o", out, *args)
        return out

    def latents(self) -> Path:
        """A latents.npz of every face (projected once, one step), for `math`, `analogy` and `interpolate`."""
        if callable(self._latents):
            self._latents = self._latents()
        if self._latents is None:
            out = self._out("faces")
            self._succeed("project", *self.images, "--models", self.models, "--steps", 1, "-o", out)
            self._latents = out / "latents.npz"
        return Path(self._latents)

    def math(self, expression: str, *args) -> Latents:
        """`facemath math EXPRESSION` over the faces' latents (names are image stems such as 000001; attributes
        such as Smiling come from the faces' attribute file); the latents it wrote (result, then jitters)."""
        out = self._out("math")
        self._succeed("math", expression, "--latents", self.latents(), "--models", self.models, "-o", out, *args)
        return load_latents(out / "latents.npz")

    def interpolate(self, a: str, b: str, *args, frames: int = 3) -> Path:
        """`facemath interpolate A B` (with `--method NAME` among `args`): the strip it drew."""
        out = self._out("interpolation").with_suffix(".png")
        self._succeed(
            "interpolate", a, b, "--latents", self.latents(), "--models", self.models, "--frames", frames, "-o", out,
            *args,
        )  # fmt: skip
        return out

    def registry(self) -> Registry:
        """The registry these commands build: the installed plugins plus the kit's."""
        return registry(*self.plugins, installed=True)

    def check(self, component: Component, params: dict[str, Any] | None = None) -> None:
        """`check_component` with inputs shaped like the kit's models."""
        check_component(component, params, models=self.models)

    def backend(self) -> EmbeddedBackend:
        """The embedded backend over the kit's models (the reference for `backend_round_trip`)."""
        return EmbeddedBackend(self.models)


# --- backends -------------------------------------------------------------------------------------------------


def backend_round_trip(
    backend: Backend, models: str | Path, *, rows: int = 3, seed: int = 0, atol: float = 1e-4
) -> dict[str, float]:
    """Check a backend against the embedded backend over the same model folder: metadata and versions, every
    named call (generate, decoder_vjp, discriminate, discriminator_grad, encode, encode_z, judge) on seeded inputs,
    and the gradient through `differentiable_decoder` inside TensorFlow. Returns the largest difference of each;
    an AssertionError names the first call that differs by more than `atol` (or fails)."""
    import tensorflow as tf

    reference = EmbeddedBackend(models)
    rng = np.random.default_rng(seed)
    meta = reference.metadata(S.GENERATOR)
    size, z_dim, bound = meta["image_size"], meta["z_dim"], z_bound(meta["z_distribution"])
    z = rng.uniform(-bound, bound, (rows, z_dim)).astype(np.float32)
    images = rng.uniform(-1, 1, (rows, size, size, 3)).astype(np.float32)
    cotangent = rng.normal(size=(rows, size, size, 3)).astype(np.float32)
    differences: dict[str, float] = {}

    def compare(what: str, call):
        try:
            ours, theirs = call(backend), call(reference)
        except FacemathError as exc:
            raise AssertionError(f"{backend.describe()}: {what} failed: {exc}") from exc
        ours, theirs = (x if isinstance(x, tuple) else (x,) for x in (ours, theirs))
        worst = 0.0
        for a, b in zip(ours, theirs, strict=True):
            a, b = np.asarray(a), np.asarray(b)
            if a.shape != b.shape:
                shapes = f"shape {a.shape}, the embedded backend {b.shape}"
                raise AssertionError(f"{backend.describe()}: {what} gave {shapes}")
            worst = max(worst, float(np.max(np.abs(a.astype(np.float64) - b))) if a.size else 0.0)
        if not worst <= atol:
            raise AssertionError(f"{backend.describe()}: {what} differs from the embedded backend by {worst:g}")
        differences[what] = worst

    for model in (*S.MODEL_NAMES, S.PROJECTOR):
        if reference.has(model):
            for key in ("z_dim", "image_size"):
                compare(f"metadata({model!r})[{key!r}]", lambda b, m=model, k=key: np.float32(b.metadata(m).get(k, 0)))
            compare(f"version({model!r})", lambda b, m=model: np.float32(b.version(m)))
    compare("generate", lambda b: b.generate(z))
    compare("decoder_vjp", lambda b: b.decoder_vjp(z, cotangent))
    compare("discriminate", lambda b: b.discriminate(images))
    compare("discriminator_grad", lambda b: b.discriminator_grad(images))
    if reference.has(S.VAE_ENCODER):
        compare("encode", lambda b: b.encode(images))
    if reference.has(S.GAN_ENCODER):
        compare("encode_z", lambda b: b.encode_z(images))
    if reference.has(S.ORACLE):
        compare("judge", lambda b: b.judge(images))

    def decoder_gradient(b: Backend):
        decode = b.differentiable_decoder(S.GENERATOR)

        @tf.function  # as the projection step runs it
        def gradient(z):
            with tf.GradientTape() as tape:
                tape.watch(z)
                value = tf.reduce_sum(decode(z) * cotangent)
            return tape.gradient(value, z)

        return gradient(tf.constant(z)).numpy()

    compare("differentiable_decoder gradient", decoder_gradient)
    return differences

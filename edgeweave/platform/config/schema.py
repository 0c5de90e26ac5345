"""The experiment schema: YAML in, validated models out, every mistake one clear line.

Sections with a pluggable choice (data, partition, model, strategy) are validated against the
parameter model that their registered class declares, so a new policy needs no schema change.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal, Optional, Sequence

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_serializer

from edgeweave.platform.core.errors import UserError
from edgeweave.platform.core.inputs import absolute_inputs
from edgeweave.platform.core.plugins import Loaded, Plugin, load, resolve
from edgeweave.platform.core.registries import DATASETS, MODELS, PARTITIONERS, RESOURCES, SERVER_RULES, STRATEGIES
from edgeweave.platform.core.registry import Params, Registry
from edgeweave.platform.devices.tiers import DEFAULT_TIERS, Tier


class Choice(BaseModel):
    """A pluggable section: the registered name and its validated parameters."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    key: str
    name: str
    params: Params

    def __getattr__(self, item: str) -> Any:
        # Parameters read as attributes of the section: cfg.partition.alpha.
        params = self.__dict__.get("params")
        if params is not None and item in type(params).model_fields:
            return getattr(params, item)
        raise AttributeError(item)

    @model_serializer
    def _flat(self) -> dict[str, Any]:
        return {self.key: self.name, **self.params.model_dump(mode="json")}


class DevicesConfig(Params):
    """The simulated devices: how many, how many a round, their tiers, resources over virtual time, deadline."""

    count: int = Field(20, ge=1)  # devices in the population, ids 0..count-1, each with its own training samples
    per_round: int = Field(10, ge=1)  # sync: devices drawn per round among the available; async: concurrency's default
    flops_per_second: float = Field(1e9, gt=0)  # speed 1.0 in a tier's terms
    tiers: list[Tier] = Field(default_factory=lambda: list(DEFAULT_TIERS), min_length=1)
    resources: Choice  # availability and speed multiplier over virtual time
    deadline: Optional[float] = Field(None, gt=0)  # seconds of virtual time per round; null: wait
    # A device that misses the deadline: wait for it, drop its update, or keep the mini-batches it finished
    stragglers: Literal["wait", "drop", "partial"] = "wait"
    over_selection: float = Field(0.0, ge=0)  # sample this fraction more, keep the first finishers
    round_ends: Literal["last_finish", "deadline"] = "last_finish"  # deadline: fixed-length rounds
    idle_wait: float = Field(60.0, gt=0)  # seconds a round lasts when no device could take part


class TrainingConfig(Params):
    """Each device's local SGD, the length of the run, and how often the global model is tested."""

    rounds: int = Field(20, ge=1)  # sync rounds, or async server steps, in the run
    local_epochs: int = Field(1, ge=1)  # passes a device makes over its own samples each round
    local_steps: Optional[int] = Field(None, ge=1)  # when set, replaces local_epochs
    batch_size: int = Field(32, ge=1)  # samples per local mini-batch
    lr: float = Field(0.05, gt=0)  # devices' SGD learning rate
    momentum: float = Field(0.9, ge=0, lt=1)  # devices' SGD momentum, started afresh every device-round
    weight_decay: float = Field(0.0, ge=0)  # L2 coefficient added to every local gradient (torch SGD's)
    prox_mu: float = Field(0.0, ge=0)  # FedProx's proximal term mu/2 ||w - w_global||^2 on what a device trains
    eval_every: int = Field(1, ge=1)  # rounds (async: steps) between test-set evaluations; the last is always tested
    # Samples per forward pass when testing; under model.norm `static` also the batches whose statistics are averaged
    eval_batch_size: int = Field(1024, ge=1)
    # Devices of a round that train the same plan on as many samples are trained in one batched pass
    # (`auto`, for models whose mini-batch is cheap, platform/train/batched.py), at most batch_devices at once.
    batched: Literal["auto", "off"] = "auto"
    batch_devices: int = Field(8, ge=2)  # the most devices trained in one batched pass


class AggregationConfig(Params):
    """How updates reach the global model: synchronous rounds, or buffered asynchronous steps (FedBuff)."""

    mode: Literal["sync", "async"] = "sync"  # sync: rounds; async: FedBuff's steps, counted by training.rounds
    buffer: Optional[int] = Field(None, ge=1)  # async: updates folded in per server step (K); default concurrency/2
    concurrency: Optional[int] = Field(None, ge=1)  # async: devices training at once; default devices.per_round
    staleness: Literal["constant", "polynomial"] = "polynomial"  # an update s steps old weighs (1+s)^-exponent
    exponent: float = Field(0.5, ge=0)  # async, polynomial staleness: the power; 0.5 is FedBuff's 1/sqrt(1+s)
    # The server's update rule on the averaged update, sync and async (platform/methods/server_rules.py)
    server: Choice = Field(
        default_factory=lambda: Choice(
            key="name", name="plain", params=SERVER_RULES.entry("plain", "aggregation.server.name")[1]()
        )
    )

    def sizes(self, devices: DevicesConfig) -> tuple[int, int]:
        """(buffer, concurrency) of an async run, defaults resolved: devices.per_round train at once, half
        of them make a step."""
        concurrency = self.concurrency or devices.per_round
        return self.buffer or max(1, concurrency // 2), concurrency


class RayConfig(Params):
    """Where the run's Ray is, its device workers and what each reserves, and bounds on waits for Ray."""

    address: Optional[str] = None  # an existing cluster; else RAY_ADDRESS, else a local one
    num_workers: Optional[int] = Field(None, ge=1)  # default: one per free slot, up to a round's devices
    cpus_per_worker: float = Field(1.0, gt=0)  # Ray CPUs a device worker reserves; its torch threads: the whole part
    gpus_per_worker: float = Field(0.0, ge=0)  # GPU share a worker reserves; above 0 it trains on CUDA if it has one
    # Bounds on every wait for Ray, in seconds: for a device worker to start when the run has none,
    # and for a round (a worker that hangs without Ray noticing stops the run with one line).
    start_timeout: float = Field(120.0, gt=0)  # wall seconds a run with no worker waits for one to start
    round_timeout: float = Field(3600.0, gt=0)  # wall seconds a round may take before the run stops


class WandbConfig(Params):
    """Weights & Biases logging, offline by default; a resumed run goes on in the same W&B run."""

    # offline: written to the run directory (wandb sync later); WANDB_MODE overrides all but a config's disabled
    mode: Literal["offline", "online", "disabled"] = "offline"
    project: str = "edgeweave"  # the W&B project
    entity: Optional[str] = None  # the W&B user or team; null: W&B's default
    group: Optional[str] = None  # a W&B group to put the run in; null: none


class LoggingConfig(Params):
    """Where the run directory goes, the console's progress bar, checkpoints and W&B."""

    out_dir: str = "runs"  # the folder each run's directory, name-timestamp, is made in (relative: to the working dir)
    progress: bool = True  # a progress bar over the rounds on stderr
    checkpoint_every: int = Field(10, ge=0)  # rounds between checkpoints (0: only at the end)
    wandb: WandbConfig = WandbConfig()


class ExperimentConfig(Params):
    plugins: list[str] = Field(default_factory=list)  # users' modules, imported before the rest is read
    name: str = Field("run", pattern=r"^[A-Za-z0-9_.-]+$")  # the run directory's name before its timestamp
    seed: int = Field(0, ge=0, lt=2**32)  # one word of every random key
    data: Choice
    partition: Choice
    model: Choice
    devices: DevicesConfig
    training: TrainingConfig = TrainingConfig()
    aggregation: AggregationConfig = Field(default_factory=AggregationConfig)
    strategy: Choice
    ray: RayConfig = RayConfig()
    logging: LoggingConfig = LoggingConfig()

    _plugins: Loaded = PrivateAttr(default_factory=lambda: Loaded(()))

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def loaded_plugins(self) -> Loaded:
        """The plugins as this config imported them (sources included), to pass on to another process."""
        return self._plugins

    def plugin_sources(self) -> dict[str, bytes]:
        """Each plugin's source as the config read it, keyed by how the config names the plugin."""
        return {p.spec: p.source.encode() for p in self._plugins}

    def __reduce_ex__(self, protocol: Any) -> Any:
        """Pickled, the plugins come first, so unpickling imports them before the classes they define."""
        plain = object.__reduce_ex__(self, protocol)
        return (_after_plugins, (self._plugins, plain)) if self._plugins else plain


def _after_plugins(plugins: Loaded, plain: tuple) -> "ExperimentConfig":
    """Rebuild a pickled config once its plugins (already unpickled, so imported) are in place."""
    make, args, state = plain[:3]
    cfg = make(*args)
    cfg.__setstate__(state)
    return cfg


PLUGGABLE: dict[tuple[str, ...], tuple[Registry, str]] = {
    ("data",): (DATASETS, "digits"),
    ("partition",): (PARTITIONERS, "iid"),
    ("model",): (MODELS, "cnn"),
    ("devices", "resources"): (RESOURCES, "constant"),
    ("strategy",): (STRATEGIES, "fedavg"),
    ("aggregation", "server"): (SERVER_RULES, "plain"),
}


def _field_model(model: type[BaseModel], loc: Sequence[Any]) -> Optional[type[BaseModel]]:
    """The pydantic model that owns the last element of `loc`, for listing its valid keys."""
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        ann = field.annotation if field else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return None
        model = ann
    return model


def _validate(model: type[BaseModel], data: Any, prefix: str) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = [str(p) for p in err["loc"]]
        where = ".".join([prefix, *loc] if prefix else loc) or prefix or "config"
        if err["type"] == "extra_forbidden":
            owner = _field_model(model, err["loc"])
            keys = ", ".join(owner.model_fields) if owner and owner.model_fields else "none"
            raise UserError(f"{where}: unknown key; valid keys: {keys}") from None
        if err["type"] == "missing":
            raise UserError(f"{where}: required but missing") from None
        msg = err["msg"].removeprefix("Value error, ")
        raise UserError(f"{where} = {err['input']!r}: {msg}") from None


def build_config(
    raw: Any, check_strategy: bool = True, base: Optional[Path] = None, carried: Sequence[Plugin] = ()
) -> ExperimentConfig:
    """Validate a raw mapping (the parsed YAML plus overrides) into an ExperimentConfig.

    Its `plugins` are imported first (plugin files relative to `base`, the config's folder, else
    to the working directory; those among `carried`, the plugins that travelled with a sweep,
    from there); its input files are found the same way (`with_input_paths`). `check_strategy=False`
    skips the strategy's own checks against the rest of the config (the DSE uses it: the front it is
    about to write cannot be checked yet).
    """
    if not isinstance(raw, dict):
        raise UserError(f"config = {type(raw).__name__}: must be a mapping of sections")
    raw = copy.deepcopy(raw)
    specs = raw.get("plugins") or []
    if not isinstance(specs, list):
        raise UserError(f"plugins = {specs!r}: must be a list of module names or .py paths")
    plugins = load(resolve(specs, base, carried))
    raw["plugins"] = [p.spec for p in plugins]
    raw = with_input_paths(raw, base)
    if isinstance(raw.get("aggregation"), dict) and "server_lr" in raw["aggregation"]:
        raise UserError(
            f"aggregation.server_lr = {raw['aggregation']['server_lr']!r}: now aggregation.server.lr "
            "(the server's update rule, sync and async): write server: {name: plain, lr: ...}"
        )
    for path, (registry, default) in PLUGGABLE.items():
        parent = raw
        for i, part in enumerate(path[:-1]):
            parent = parent.setdefault(part, {})
            if not isinstance(parent, dict):
                raise UserError(f"{'.'.join(path[: i + 1])} = {parent!r}: must be a mapping")
        section = ".".join(path)
        body = parent.get(path[-1]) or {}
        if not isinstance(body, dict):
            example = f", e.g. {{{registry.key}: {body}}}" if isinstance(body, str) else ""
            raise UserError(f"{section} = {body!r}: must be a mapping{example}")
        name = body.pop(registry.key, default)
        _, params_model = registry.entry(name, f"{section}.{registry.key}")
        params = _validate(params_model, body, section)
        parent[path[-1]] = Choice(key=registry.key, name=name, params=params)
    raw["model"] = _with_paper_norm(raw["model"], raw["strategy"])
    cfg = _validate(ExperimentConfig, raw, "")
    cfg._plugins = plugins  # type: ignore[attr-defined]
    _check_across(cfg, check_strategy)  # type: ignore[arg-type]
    return cfg  # type: ignore[return-value]


def _with_paper_norm(model: Choice, strategy: Choice) -> Choice:
    """The model with `norm` filled in from the method's paper where the config leaves it out (a model
    whose parameters have no `norm` keeps its batch norm as built)."""
    if "norm" not in type(model.params).model_fields or getattr(model.params, "norm", None) is not None:
        return model
    method, _ = STRATEGIES.entry(strategy.name, "strategy.name")
    params = model.params.model_copy(update={"norm": method.rules.paper_norm})
    return Choice(key=model.key, name=model.name, params=params)


def with_input_paths(raw: dict, base: Optional[Path]) -> dict:
    """The raw config with the input files its sections name (a front, a trace) as absolute paths, relative ones
    found from `base`, the config's folder, else from the working directory, as plugins are: a resumed run, a
    sweep's trials and `edgeweave dse` then find the same files from any folder."""
    raw = copy.deepcopy(raw)
    for path, (registry, default) in PLUGGABLE.items():
        parent: Any = raw
        for part in path[:-1]:
            parent = parent.get(part) if isinstance(parent, dict) else None
        body = parent.get(path[-1]) if isinstance(parent, dict) else None
        if not isinstance(body, dict) or body.get(registry.key, default) not in registry.names():
            continue  # nothing to find, or a mistake build_config names
        _, params = registry.entry(body.get(registry.key, default), ".".join(path))
        parent[path[-1]] = absolute_inputs(params, body, base)
    return raw


def _check_across(cfg: ExperimentConfig, check_strategy: bool) -> None:
    if cfg.devices.per_round > cfg.devices.count:
        raise UserError(
            f"devices.per_round = {cfg.devices.per_round}: must be at most devices.count ({cfg.devices.count})"
        )
    d = cfg.devices
    if d.stragglers != "wait" and d.deadline is None:
        raise UserError(f"devices.stragglers = {d.stragglers!r}: needs devices.deadline in seconds (or use 'wait')")
    if d.round_ends == "deadline" and d.stragglers == "wait":
        raise UserError(
            "devices.round_ends = 'deadline': devices.stragglers = 'wait' waits for every device, so "
            "rounds would end at the last finish; use stragglers drop or partial, or round_ends: "
            "last_finish"
        )
    names = [t.name for t in d.tiers]
    if len(set(names)) != len(names):
        raise UserError(f"devices.tiers = {names}: tier names must differ")
    a = cfg.aggregation
    ignored = [
        k for k, f in type(a).model_fields.items() if k not in ("mode", "server") and getattr(a, k) != f.get_default()
    ]
    if a.mode == "sync" and ignored:
        raise UserError(
            f"aggregation.{ignored[0]} = {getattr(a, ignored[0])!r}: only async aggregation uses it; "
            "add aggregation.mode: async, or leave it out"
        )
    if a.mode == "async":
        if d.over_selection > 0:
            raise UserError(
                f"devices.over_selection = {d.over_selection:g}: async aggregation has no rounds to "
                "over-select for; set it to 0 or use aggregation.mode: sync"
            )
        if d.round_ends != "last_finish":
            raise UserError(
                f"devices.round_ends = {d.round_ends!r}: async aggregation has no rounds to end; "
                "use 'last_finish' or aggregation.mode: sync"
            )
        if a.buffer is not None and a.buffer > d.count:
            raise UserError(
                f"aggregation.buffer = {a.buffer}: must be at most devices.count ({d.count}); a device "
                "trains at most once per model version"
            )
        if a.concurrency is not None and a.concurrency > d.count:
            raise UserError(f"aggregation.concurrency = {a.concurrency}: must be at most devices.count ({d.count})")
    if check_strategy:
        method, _ = STRATEGIES.entry(cfg.strategy.name, "strategy.name")
        method.rules.check(cfg.strategy.params, cfg)


def parse_override(text: str) -> tuple[list[str], Any]:
    """'section.key=value' as a key path and a YAML-typed value."""
    path, sep, value = text.partition("=")
    keys = path.strip().split(".")
    if not sep or not all(keys):
        raise UserError(f"--set {text!r}: expected section.key=value")
    try:
        return keys, yaml.safe_load(value)
    except yaml.YAMLError:
        raise UserError(f"--set {text!r}: the value is not valid YAML") from None


def set_key(raw: dict, keys: Sequence[str], value: Any, what: str) -> dict:
    """Write one value at a key path into the raw mapping, creating sections as needed."""
    node = raw
    for i, key in enumerate(keys[:-1]):
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise UserError(f"{what}: {'.'.join(keys[: i + 1])} is not a section")
    node[keys[-1]] = value
    return raw


def apply_overrides(raw: dict, overrides: Sequence[str]) -> dict:
    """Write each 'a.b=value' into the raw mapping, creating sections as needed."""
    for text in overrides:
        keys, value = parse_override(text)
        set_key(raw, keys, value, f"--set {text!r}")
    return raw


def read_yaml(path: str | Path) -> Any:
    """Parse a YAML file safely; a missing or malformed file is a UserError."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"config = {str(path)!r}: no such file")
    try:
        return yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise UserError(f"config = {str(path)!r}: not valid YAML{where}") from None


def load_config(
    path: str | Path, overrides: Sequence[str] = (), check_strategy: bool = True, plugins: Sequence[str] = ()
) -> ExperimentConfig:
    """Read a YAML experiment, apply `--set` overrides, add `plugins` (paths relative to the working
    directory, as `--plugin` gives them), validate."""
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise UserError(f"config = {str(path)!r}: must be a mapping of sections")
    raw = with_plugins(apply_overrides(raw, overrides), plugins)
    return build_config(raw, check_strategy, Path(path).parent)


def with_plugins(raw: dict, plugins: Sequence[str]) -> dict:
    """The raw config with more plugins (each resolved from the working directory) after its own."""
    if not plugins:
        return raw
    own = raw.get("plugins") or []
    if not isinstance(own, list):
        raise UserError(f"plugins = {own!r}: must be a list of module names or .py paths")
    return {**raw, "plugins": [*own, *(p.spec for p in resolve(plugins))]}


# Fields added after checkpoints existed: left out of the dump while at their default, so older
# configs read as they did before (their checkpoints, of an earlier format, are refused by it).
ADDED_LATER: dict[tuple[str, ...], type[BaseModel]] = {
    ("plugins",): ExperimentConfig,
    ("ray", "start_timeout"): RayConfig,
    ("ray", "round_timeout"): RayConfig,
    ("training", "batched"): TrainingConfig,
    ("training", "batch_devices"): TrainingConfig,
    ("training", "prox_mu"): TrainingConfig,
    ("aggregation",): ExperimentConfig,
    ("aggregation", "server"): AggregationConfig,
}


def dump_config(cfg: ExperimentConfig) -> str:
    """The resolved config as YAML that load_config accepts back unchanged (fields of ADDED_LATER at their
    default left out)."""
    raw = cfg.to_dict()
    for path, model in ADDED_LATER.items():
        *parents, key = path
        default = model.model_fields[key].get_default(call_default_factory=True)
        if isinstance(default, BaseModel):
            default = default.model_dump(mode="json")
        section = raw
        for p in parents:
            section = section.get(p, {})
        if section.get(key) == default:
            del section[key]
    return yaml.safe_dump(raw, sort_keys=False)

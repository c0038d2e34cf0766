"""Models on disk and from the hubs: listing, pulling, removing (``xiaoshuo model …``).

* :func:`list_models`, :func:`plan_pull`, :func:`pull`, :func:`remove`, :func:`configured`.
* What a model *name* means — ``auto``, a hub id, a pulled folder — is :mod:`xiaoshuo.model_names`
  (the one resolver that config and every ``--model`` flag use); :func:`auto_model`, :func:`resolve`,
  :func:`find_local` … are re-exported here.

Downloads go to ``<models_dir>/<owner>/<name>`` from Hugging Face (``huggingface_hub``, any
``HF_ENDPOINT`` mirror) or ModelScope (the ``modelscope`` client); both resume an interrupted download.
The free disk is checked against the hub's file list before anything is fetched.  Nothing here runs
at import time; the hub clients are imported inside the functions that use them.  Imports go one way:
this module → :mod:`xiaoshuo.hf` → :mod:`xiaoshuo.model_names` (config is only a type here).
"""

from __future__ import annotations

import contextlib
import fnmatch
import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xiaoshuo.config import mask_url
from xiaoshuo.errors import HardwareError, XiaoshuoError
from xiaoshuo.hf import hub_reachable

# The resolver (auto, hub ids, pulled folders) lives below config, hf and this module; its names are
# re-exported here because `xiaoshuo.models` is where callers have always found them.
from xiaoshuo.model_names import BIG_GPU_GIB as BIG_GPU_GIB
from xiaoshuo.model_names import MID_GPU_GIB as MID_GPU_GIB
from xiaoshuo.model_names import auto_model as auto_model
from xiaoshuo.model_names import find_local, is_hub_id, local_dir, pull_command
from xiaoshuo.model_names import resolve as resolve
from xiaoshuo.model_names import resolve_model as resolve_model

if TYPE_CHECKING:
    from xiaoshuo.config import Settings

GIB = 1024**3
HF_DEFAULT_ENDPOINT = "https://huggingface.co"
MODELSCOPE_DEFAULT_ENDPOINT = "https://www.modelscope.cn"


@dataclass(frozen=True)
class ModelCard:
    kind: str  # llm | embed
    size_gib: float  # download size of the files we fetch (approximate)
    note: str


#: The models ``auto`` picks from (same ids on Hugging Face and ModelScope).
CATALOGUE: dict[str, ModelCard] = {
    "Qwen/Qwen2.5-7B-Instruct": ModelCard("llm", 15.2, "GPU ≥16 GB：种子项目的默认模型，质量最好"),
    "Qwen/Qwen2.5-3B-Instruct": ModelCard("llm", 6.2, "GPU 8–16 GB"),
    "Qwen/Qwen2.5-1.5B-Instruct": ModelCard("llm", 3.1, "CPU / 小显存：笔记本上每秒约 5–15 字"),
    "BAAI/bge-m3": ModelCard("embed", 2.3, "GPU：多语言向量模型"),
    "BAAI/bge-small-zh-v1.5": ModelCard("embed", 0.1, "CPU：中文小向量模型"),
}

#: Hub ids that differ on ModelScope (none of the catalogue's do today).
MODELSCOPE_IDS: dict[str, str] = {}

#: Files a runtime never needs (other frameworks' weights, ONNX/OpenVINO exports, GGUF).
IGNORE_PATTERNS = (
    "*.onnx",
    "*.onnx_data",
    "onnx/*",
    "openvino/*",
    "*.msgpack",
    "*.h5",
    "*.ot",
    "flax_model*",
    "tf_model*",
    "rust_model*",
    "*.gguf",
    ".gitattributes",
)


class ModelError(XiaoshuoError):
    """A model cannot be listed, downloaded or removed."""


class OfflineError(ModelError):
    """No hub answered and the model is not on disk."""


class DiskSpaceError(HardwareError):
    """Not enough free disk for a download."""


# ----------------------------------------------------------------------------- list / rm


@dataclass
class LocalModel:
    name: str
    where: str  # models_dir | hf-cache
    path: str
    size_bytes: int
    used_by: list[str] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        return asdict(self)


def _tree_size(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += (Path(root) / f).stat().st_size
            except OSError:
                continue
    return total


def list_models(settings: Settings) -> list[LocalModel]:
    """Models under ``paths.models_dir`` (folders with config.json/modules.json, and GGUF files) and in the
    HF cache."""
    models_dir = Path(settings.paths.models_dir)
    used = {
        "model.base_model": settings.model.base_model,
        "memory.embedding_model": settings.memory.embedding_model,
    }
    found: list[LocalModel] = []
    if models_dir.is_dir():
        for marker in ("config.json", "modules.json"):
            for cfg in sorted(models_dir.glob(f"*/{marker}")) + sorted(models_dir.glob(f"*/*/{marker}")):
                folder = cfg.parent
                if any(m.path == str(folder) for m in found) or ".cache" in folder.parts:
                    continue
                name = folder.relative_to(models_dir).as_posix()
                found.append(LocalModel(name, "models_dir", str(folder), _tree_size(folder)))
        for gguf in sorted(models_dir.rglob("*.gguf")):  # pulled with --file, or converted for llamacpp
            if ".cache" in gguf.relative_to(models_dir).parts or not gguf.is_file():
                continue
            name = gguf.relative_to(models_dir).as_posix()
            found.append(LocalModel(name, "models_dir (gguf)", str(gguf), gguf.stat().st_size))
    try:
        from huggingface_hub import scan_cache_dir

        for repo in scan_cache_dir().repos:
            if repo.repo_type == "model":
                found.append(LocalModel(repo.repo_id, "hf-cache", str(repo.repo_path), repo.size_on_disk))
    except Exception:  # no cache folder yet, unreadable cache: nothing to list there
        pass
    for m in found:
        for key, value in used.items():
            if value in (m.name, m.path) or Path(value).expanduser().resolve() == Path(m.path).resolve():
                m.used_by.append(key)
    return found


def remove(name: str, settings: Settings) -> list[str]:
    """Delete ``name`` from ``paths.models_dir`` and/or the HF cache; returns what was removed."""
    removed = []
    folder = local_dir(name, settings.paths.models_dir)
    root = Path(settings.paths.models_dir).resolve()
    inside = root in folder.resolve().parents  # never models_dir itself or anything outside it
    if (is_hub_id(name) or Path(name).name == name) and inside and folder.is_dir():
        shutil.rmtree(folder)
        removed.append(str(folder))
    try:
        from huggingface_hub import scan_cache_dir

        cache = scan_cache_dir()
        hashes = [r.commit_hash for repo in cache.repos if repo.repo_id == name for r in repo.revisions]
        if hashes:
            cache.delete_revisions(*hashes).execute()
            removed.append(f"hf-cache:{name}")
    except Exception:
        pass
    if not removed:
        raise ModelError(
            f"没有找到要删除的模型 (no such model): {name}",
            expected=f"a folder under {settings.paths.models_dir} or a repo in the Hugging Face cache",
            received=name,
            fix="运行 xiaoshuo model list 查看本地模型",
        )
    return removed


# ----------------------------------------------------------------------------- pull


@dataclass
class PullPlan:
    model_id: str
    source: str  # hf | modelscope
    endpoint: str
    revision: str | None
    files: dict[str, int]  # path in the repo → size in bytes
    target: Path
    why: str = ""  # which source answered and why it was chosen
    commit: str | None = None  # the revision's commit: every file comes from the same one
    sha256: dict[str, str] = field(default_factory=dict)  # LFS files' sha256, checked after download

    @property
    def total_bytes(self) -> int:
        return sum(self.files.values())


def hf_endpoint(settings: Settings) -> str:
    return (settings.model.hf_endpoint or os.environ.get("HF_ENDPOINT") or HF_DEFAULT_ENDPOINT).rstrip("/")


def modelscope_endpoint() -> str:
    return (
        os.environ.get("MODELSCOPE_ENDPOINT")
        or (("https://" + os.environ["MODELSCOPE_DOMAIN"]) if os.environ.get("MODELSCOPE_DOMAIN") else "")
        or MODELSCOPE_DEFAULT_ENDPOINT
    ).rstrip("/")


def choose_files(files: dict[str, int]) -> dict[str, int]:
    """Drop files no runtime needs; with safetensors weights present, drop the duplicate .bin/.pth."""
    keep = {p: s for p, s in files.items() if not any(fnmatch.fnmatch(p, pat) for pat in IGNORE_PATTERNS)}
    if any(p.endswith(".safetensors") for p in keep):
        keep = {
            p: s
            for p, s in keep.items()
            if not (p.rsplit("/", 1)[-1].startswith("pytorch_model") and p.endswith((".bin", ".pth")))
        }
    return keep


Listing = tuple[dict[str, int], dict[str, str], str]  # sizes, LFS sha256s, commit


def _list_hf(model_id: str, revision: str | None, endpoint: str) -> Listing:
    from huggingface_hub import HfApi

    info = HfApi(endpoint=endpoint).model_info(model_id, revision=revision, files_metadata=True)
    siblings = info.siblings or []
    sizes = {s.rfilename: int(s.size or 0) for s in siblings}
    shas = {s.rfilename: s.lfs.sha256 for s in siblings if s.lfs is not None and s.lfs.sha256}
    return sizes, shas, info.sha or ""


@contextlib.contextmanager
def _quiet_modelscope() -> Iterator[None]:
    """The ModelScope client logs every retry in English (``listing failed (NetworkError), retry in 1s``)
    before our one-line message; only its errors show, unless xiaoshuo itself logs at DEBUG (``--debug``)."""
    if logging.getLogger("xiaoshuo").isEnabledFor(logging.DEBUG):
        yield
        return
    loggers = [logging.getLogger(n) for n in ("modelscope_hub", "modelscope")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _list_modelscope(model_id: str, revision: str | None, endpoint: str) -> Listing:
    from modelscope_hub.api import HubApi

    api = HubApi(endpoint=endpoint)
    with _quiet_modelscope():
        files = api.list_repo_files(model_id, "model", revision=revision, recursive=True)
    blobs = [f for f in files if (getattr(f, "type", "blob") or "blob") != "tree"]
    return {f.path: int(f.size or 0) for f in blobs}, {}, ""


def source_order(settings: Settings, source: str | None) -> list[str]:
    wanted = source or settings.model.source
    if wanted == "auto":
        return ["hf", "modelscope"]
    if wanted not in ("hf", "modelscope"):
        raise ModelError(
            "未知下载源 (unknown model source)", expected="auto, hf or modelscope", received=wanted
        )
    return [wanted]


def pick_files(all_files: dict[str, int], pattern: str) -> dict[str, int]:
    """The repo's files whose path or file name matches ``pattern`` (``--file '*Q4_K_M.gguf'``)."""
    return {
        p: s
        for p, s in all_files.items()
        if fnmatch.fnmatch(p, pattern) or fnmatch.fnmatch(p.rsplit("/", 1)[-1], pattern)
    }


def plan_pull(
    model_id: str,
    settings: Settings,
    *,
    source: str | None = None,
    revision: str | None = None,
    file: str | None = None,
) -> PullPlan:
    """Ask the hub(s) for the file list; ``auto`` takes the first source that answers and says why.

    ``file``: a pattern (fnmatch) — only the matching files, e.g. one GGUF of a repo that holds several
    quantizations (``*Q4_K_M.gguf``) for the llamacpp backend; GGUF files are otherwise skipped."""
    if not is_hub_id(model_id):
        raise ModelError(
            "只能下载 hub 上的模型 (only hub models can be pulled)",
            expected="owner/name, e.g. Qwen/Qwen2.5-1.5B-Instruct",
            received=model_id,
            fix="本地模型直接把路径写进 model.base_model 即可",
        )
    tried = []
    order = source_order(settings, source)
    for name in order:
        endpoint = hf_endpoint(settings) if name == "hf" else modelscope_endpoint()
        if name == "hf":
            _refuse_hf_offline()
        if len(order) > 1:  # auto: a quick reachability probe first, no retry storm
            ok, detail = hub_reachable(endpoint)
            if not ok:
                tried.append(f"{name} {mask_url(endpoint)}: {detail}")
                continue
        repo_id = MODELSCOPE_IDS.get(model_id, model_id) if name == "modelscope" else model_id
        try:
            listing = _list_hf if name == "hf" else _list_modelscope
            all_files, shas, commit = listing(repo_id, revision, endpoint)
            files = choose_files(all_files) if file is None else pick_files(all_files, file)
        except Exception as exc:
            said = " ".join(str(exc).split())[:200]
            tried.append(f"{name} {mask_url(endpoint)}: {type(exc).__name__}: {said}")
            continue
        if not files and file is not None:
            ggufs = sorted(p for p in all_files if p.endswith(".gguf"))
            raise ModelError(
                f"{model_id} 里没有匹配 {file} 的文件 (no file matches --file)",
                expected="a pattern matching one of: "
                + (", ".join(ggufs[:12]) or ", ".join(sorted(all_files)[:12])),
                received=file,
                fix="用 --file 指定上面列出的文件名，如 --file '*Q4_K_M.gguf'",
            )
        if not files:
            tried.append(f"{name} {mask_url(endpoint)}: 仓库里没有文件 (no files)")
            continue
        why = f"{name} ({mask_url(endpoint)}) 已响应 answered"
        if tried:
            why += f"；未响应 did not answer: {'; '.join(tried)}"
        target = local_dir(model_id, settings.paths.models_dir)
        shas = {k: v for k, v in shas.items() if k in files}
        return PullPlan(model_id, name, endpoint, revision, files, target, why, commit or None, shas)
    raise OfflineError(
        f"离线：无法从任何下载源获取 {model_id} (no model source answered)",
        expected=f"a reachable source among {', '.join(order)}",
        received="; ".join(tried),
        fix=(
            "检查网络；国内可设置 model.source = modelscope 或 model.hf_endpoint 指向镜像 "
            "(e.g. https://hf-mirror.com)；或把已有的模型文件夹放到 "
            f"{local_dir(model_id, settings.paths.models_dir)}"
        ),
    )


def _refuse_hf_offline() -> None:
    from huggingface_hub.constants import HF_HUB_OFFLINE

    if HF_HUB_OFFLINE:
        raise OfflineError(
            "离线模式：HF_HUB_OFFLINE 已设置，不能从 Hugging Face 下载 (offline mode is on)",
            expected="HF_HUB_OFFLINE and TRANSFORMERS_OFFLINE unset to download",
            received=f"HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', '')!r}, "
            f"TRANSFORMERS_OFFLINE={os.environ.get('TRANSFORMERS_OFFLINE', '')!r}",
            fix="去掉环境变量 HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE 后重试，或用 --source modelscope",
        )


def bytes_present(plan: PullPlan) -> int:
    """Bytes of the plan already on disk: complete files plus partial downloads (resume)."""
    done = 0
    for rel, size in plan.files.items():
        path = plan.target / rel
        if path.is_file():
            done += min(path.stat().st_size, size)
    for rel, size in plan.files.items():
        if (plan.target / rel).is_file():
            continue
        # ours (Hugging Face) under .cache/xiaoshuo/, the modelscope client's beside the file
        for part in (_part_path(plan, rel), plan.target / f"{rel}.incomplete"):
            if part.is_file():
                done += min(part.stat().st_size, size)
    return min(done, plan.total_bytes)


def check_disk(plan: PullPlan) -> None:
    """Refuse a download that would not fit (size from the hub's file list, minus what is here)."""
    needed = max(plan.total_bytes - bytes_present(plan), 0)
    probe = plan.target
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    margin = 256 * 1024**2
    if needed + margin > free:
        raise DiskSpaceError(
            f"磁盘空间不够下载 {plan.model_id} (not enough free disk)",
            expected=f"{(needed + margin) / GIB:.2f} GiB free under {probe} "
            f"({needed / GIB:.2f} GiB to fetch + 0.25 GiB margin)",
            received=f"{free / GIB:.2f} GiB free",
            fix="清理磁盘，或把 paths.models_dir 指向更大的磁盘",
        )


ProgressFn = Callable[[int, int], None]


def pull(
    model_id: str,
    settings: Settings,
    *,
    source: str | None = None,
    revision: str | None = None,
    on_plan: Callable[[PullPlan], None] | None = None,
    on_progress: ProgressFn | None = None,
    interval: float = 0.5,
    file: str | None = None,
) -> PullPlan:
    """Download ``model_id`` into ``<models_dir>/<id>``: plan, disk check, download (resumable).
    ``file``: only the files matching this pattern (:func:`plan_pull`).

    ``on_progress(done_bytes, total_bytes)`` is called from a watcher thread while files arrive
    (it measures the target folder, partial files included, so it works for both clients).
    """
    plan = plan_pull(model_id, settings, source=source, revision=revision, file=file)
    check_disk(plan)
    if on_plan:
        on_plan(plan)
    plan.target.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(interval):
            on_progress(bytes_present(plan), plan.total_bytes)  # type: ignore[misc]

    watcher = threading.Thread(target=watch, name="xiaoshuo-pull-progress", daemon=True)
    if on_progress:
        on_progress(bytes_present(plan), plan.total_bytes)
        watcher.start()
    try:
        if plan.source == "hf":
            _download_hf(plan)
        else:
            _download_modelscope(plan)
    except XiaoshuoError:
        raise
    except Exception as exc:
        raise ModelError(
            f"下载 {model_id} 中断 (download failed, from {plan.source})",
            expected=f"the files of {model_id} from {plan.endpoint}",
            received=f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}",
            fix=f"重新运行 {pull_command(model_id)}（会从断点继续）",
        ) from None
    finally:
        stop.set()
        if watcher.is_alive():
            watcher.join()
    if on_progress:
        on_progress(plan.total_bytes, plan.total_bytes)
    return plan


def _download_hf(plan: PullPlan) -> None:
    """Fetch each file with ``Range`` resume into ``.cache/xiaoshuo/<file>.part``, verify, rename.

    huggingface_hub 2.x's own ``snapshot_download`` restarts an interrupted file from byte 0 (it
    writes to a fresh per-process temp file); for a single 3–15 GB weights file on a flaky line
    that is the difference between finishing and not.  The hub client still does the rest: repo
    info and file list, URLs, auth headers, its HTTP session (proxies, redirects) and error types.
    """
    from huggingface_hub import hf_hub_url
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    session = get_session()
    for rel, size in sorted(plan.files.items(), key=lambda kv: kv[1]):
        dest = plan.target / rel
        if dest.is_file() and dest.stat().st_size == size:
            continue  # finished in an earlier run
        part = _part_path(plan, rel)
        part.parent.mkdir(parents=True, exist_ok=True)
        have = part.stat().st_size if part.is_file() else 0
        if have > size:
            have = 0
        headers = build_hf_headers()
        if have:
            headers["Range"] = f"bytes={have}-"
        url = hf_hub_url(plan.model_id, rel, revision=plan.commit or plan.revision, endpoint=plan.endpoint)
        if have < size or size == 0:
            with session.stream("GET", url, headers=headers, follow_redirects=True, timeout=30) as response:
                hf_raise_for_status(response)
                resumed = have and response.status_code == 206
                with part.open("ab" if resumed else "wb") as fh:
                    for chunk in response.iter_bytes():
                        fh.write(chunk)
        _verify(plan, rel, part, size)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(part, dest)


def _part_path(plan: PullPlan, rel: str) -> Path:
    return plan.target / ".cache" / "xiaoshuo" / f"{rel}.part"


def _verify(plan: PullPlan, rel: str, part: Path, size: int) -> None:
    got = part.stat().st_size
    problem = f"{got} bytes, expected {size}" if got != size else ""
    want_sha = plan.sha256.get(rel)
    if not problem and want_sha:
        import hashlib

        digest = hashlib.sha256()
        with part.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                digest.update(block)
        if digest.hexdigest() != want_sha:
            problem = f"sha256 {digest.hexdigest()[:12]}…, expected {want_sha[:12]}…"
    if problem:
        part.unlink(missing_ok=True)
        raise ModelError(
            f"下载的文件不完整或已损坏 (downloaded file is incomplete or corrupt): {rel}",
            expected=f"{size} bytes" + (f", sha256 {want_sha}" if want_sha else ""),
            received=problem,
            fix=f"重新运行 {pull_command(plan.model_id)}（损坏的部分已删除）",
        )


def _download_modelscope(plan: PullPlan) -> None:
    from modelscope import snapshot_download

    with _quiet_modelscope():
        _snapshot(snapshot_download, plan)


def _snapshot(snapshot_download: Any, plan: PullPlan) -> None:
    snapshot_download(
        MODELSCOPE_IDS.get(plan.model_id, plan.model_id),
        revision=plan.revision,
        local_dir=str(plan.target),
        endpoint=plan.endpoint,
        allow_patterns=sorted(plan.files),
        max_workers=4,
    )


def configured(settings: Settings) -> list[tuple[str, str, Path | None]]:
    """``(setting, hub id or path, local folder or None)`` for the base and embedding models.

    A model already pulled resolves (in :func:`xiaoshuo.config.load`) to ``<models_dir>/<owner>/<name>``;
    its hub id is recovered from that folder.  ``memory.embedding_model = "none"`` is left out.
    """
    out = []
    models_dir = Path(settings.paths.models_dir)
    for key in ("model.base_model", "memory.embedding_model"):
        value = settings.get(key)
        if value.lower() == "none":
            continue
        folder = find_local(value, models_dir)
        name = value
        if folder is not None:
            try:
                rel = folder.resolve().relative_to(models_dir.resolve()).as_posix()
                name = rel if is_hub_id(rel) else value
            except ValueError:
                pass
        out.append((key, name, folder))
    return out

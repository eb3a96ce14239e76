"""The images' build context and their content tags, read from the Dockerfiles and .dockerignore.

A tag is a digest of what an image is built from: its Dockerfile and the files its COPY instructions
take from the context (.dockerignore decides which). An unchanged image keeps its tag, so it is never
rebuilt; a changed one gets a new immutable tag, which flows into the pipelines and the image rule.
"""

from __future__ import annotations

import shutil
from functools import cache
from pathlib import Path

from aws_cdk import AssetHashType, BundlingOptions
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from stacks.synth.bundling import NO_DOCKER, REPO_ROOT, LocalBundler, files_digest

CONTAINERS = REPO_ROOT / "containers"
IMAGES = ("training", "inference")
BUILD_FILES = ("containers/buildspec.yml", "containers/build_images.sh")
TAG_PREFIX = "sha-"


@cache
def context_files(root: Path = REPO_ROOT) -> tuple[str, ...]:
    """Paths relative to `root` that Docker sends as the build context: .dockerignore's '!' patterns after '*'."""
    patterns = [line.strip() for line in (root / ".dockerignore").read_text().splitlines() if line.strip()]
    if patterns[0] != "*" or not all(p.startswith("!") for p in patterns[1:]):
        raise ValueError(".dockerignore must exclude everything ('*') and then allow files back with '!' patterns")
    files = {p.relative_to(root).as_posix() for pattern in patterns[1:] for p in root.glob(pattern[1:]) if p.is_file()}
    return tuple(sorted(files))


def dockerfile(name: str, root: Path = REPO_ROOT) -> Path:
    return root / "containers" / name / "Dockerfile"


def copied_files(name: str, root: Path = REPO_ROOT) -> tuple[str, ...]:
    """The context files the image's COPY instructions take (a directory source takes what the context holds of it)."""
    sources: list[str] = []
    for line in dockerfile(name, root).read_text().replace("\\\n", " ").splitlines():
        parts = line.split()
        if parts and parts[0].upper() == "COPY":
            sources.extend(p for p in parts[1:-1] if not p.startswith("--"))
    taken = {f for f in context_files(root) for s in sources if f == s or (s.endswith("/") and f.startswith(s))}
    missing = [s for s in sources if not any(f == s or (s.endswith("/") and f.startswith(s)) for f in taken)]
    if missing:
        raise ValueError(f"{dockerfile(name, root)} copies {', '.join(missing)}, which .dockerignore leaves out of the context")
    return tuple(sorted(taken))


def image_tag(name: str, root: Path = REPO_ROOT) -> str:
    """`sha-` and 16 hex digits of the digest of the Dockerfile and the files it copies."""
    relatives = (dockerfile(name, root).relative_to(root).as_posix(), *copied_files(name, root))
    return TAG_PREFIX + files_digest((relative, root / relative) for relative in relatives)[:16]


def build_source_files() -> tuple[str, ...]:
    """Everything CodeBuild needs: the context, both Dockerfiles, .dockerignore, the buildspec and its script."""
    dockerfiles = tuple(dockerfile(n).relative_to(REPO_ROOT).as_posix() for n in IMAGES)
    return tuple(sorted({*context_files(), *dockerfiles, ".dockerignore", *BUILD_FILES}))


def build_source_asset(scope: Construct, construct_id: str) -> s3_assets.Asset:
    """The build source as a zip asset, bundled locally; its hash depends on contents only, not the checkout path."""
    files = build_source_files()

    def fill(output: Path) -> None:
        for relative in files:
            target = output / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / relative, target)

    return s3_assets.Asset(
        scope,
        construct_id,
        path=str(CONTAINERS),
        asset_hash=files_digest((relative, REPO_ROOT / relative) for relative in files),
        asset_hash_type=AssetHashType.CUSTOM,
        bundling=BundlingOptions(image=NO_DOCKER, local=LocalBundler(fill)),
    )

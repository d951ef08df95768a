"""Workspace paths that the developer's tools execute or obey: the sandbox and the file tools leave them alone.

A workspace is shared with the user's own tools, and many of them look for configuration in the directory they
are started in (and its parents) and act on it without asking: git runs ``core.fsmonitor`` from ``.git/config``
on the next ``git status``, which editors run every few seconds; direnv runs ``.envrc`` on ``cd``; asdf and mise
run the interpreter a ``.tool-versions`` line names (``python path:./x``) whenever a shimmed command starts;
npm honours ``script-shell`` and ``node-options`` from ``.npmrc``; yarn runs the script ``yarnPath`` names in
``.yarnrc.yml``; pnpm runs ``.pnpmfile.cjs`` on install; cargo runs ``rustc-wrapper`` and target runners from
``.cargo/config.toml`` and rustup the toolchain ``path`` of ``rust-toolchain.toml``; uv, poetry, pdm and the
editors' Python extensions find ``.venv`` and run its interpreter (VS Code at folder open). Model-written
content there would be code run on the host, so by default the sandbox mounts these read-only and the file tools
refuse to write them (``allow_protected_writes=True`` is the user's opt-in).

Where the line is drawn: a path is protected when a developer tool runs code from it, or from a place it
names, or fetches code from where it says (a registry), *merely because the developer works in the directory*
— ``cd``, a prompt hook, a version-manager shim, ``git``, the package manager's own start-up or install, opening
the editor — whatever the project is. The project's own definition is not protected: sources, tests,
manifests and build scripts (``pyproject.toml``, ``setup.py``, ``package.json``, ``Cargo.toml``, ``build.rs``,
``Makefile``, ``conftest.py``, Gradle and Maven files, ``node_modules``) are what the model is asked to change,
the user reviews them as the change, and they run when the user builds or runs the project, knowingly. Also left
out: files that only select a version by name (``.nvmrc``, ``.node-version``, ``.ruby-version``,
``.python-version``: no path, no code), ``.env`` (application settings the model legitimately edits; loaded into
an environment only where the user configured a tool to), and tools that refuse configuration from the
working directory by default (gdb's ``.gdbinit``).

Names are compared after :func:`fold`, the spellings a host filesystem may treat as equal.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from pathlib import PurePosixPath

__all__ = ["LIVE_NAMES", "PROTECTED_NAMES", "fold", "is_protected", "is_protected_name", "protected_part"]

# Names protected wherever they appear in the tree (tools look in the directory they start in and its parents);
# a directory protects everything below it.
PROTECTED_NAMES: tuple[str, ...] = (
    # version control, run by the user and polled by editors
    ".git",  # config (fsmonitor, hooksPath, aliases, filters), hooks/, info/attributes
    ".gitmodules",  # submodule URLs and update commands (``update = !cmd``)
    ".hg",  # Mercurial: .hg/hgrc [hooks] run on hg commands
    ".jj",  # Jujutsu: .jj/repo/config.toml (aliases, fsmonitor command)
    ".sl",  # Sapling: .sl/config [hooks]
    ".githooks",  # a common core.hooksPath target
    ".husky",  # git hooks installed by husky
    ".lefthook",  # scripts lefthook's hooks run
    ".pre-commit-config.yaml",  # hooks pre-commit runs on commit
    # the shell: hooks at cd and at every prompt, and version-manager shims
    ".envrc",  # direnv: runs on cd
    ".tool-versions",  # asdf/mise: ``path:`` versions make every shim run that directory's binaries
    ".mise",  # mise: .mise/config.toml ([env] _.source, [hooks], path: versions)
    # package managers and toolchains, at start-up or install
    ".npmrc",  # npm/pnpm: script-shell, node-options (--require), registry
    ".yarnrc",  # yarn 1: yarn-path runs a script in place of yarn
    ".yarnrc.yml",  # yarn 2+: yarnPath, plugins
    ".yarn",  # yarn 2+: releases/ and plugins/ that .yarnrc.yml makes yarn run
    ".pnpmfile.cjs",  # pnpm: hooks run on every install
    ".pnpmfile.mjs",
    "bunfig.toml",  # bun: preload scripts, registry
    ".venv",  # the environment uv/poetry/pdm and editors find and run (bin/python, .pth files)
    "uv.toml",  # uv: indexes, python downloads
    "poetry.toml",  # poetry's local config (virtualenvs.path, installer)
    "pdm.toml",  # pdm's project config (python.path, sources)
    ".pdm.toml",
    ".pdm-python",  # the interpreter pdm runs
    ".cargo",  # cargo: config.toml (build.rustc-wrapper, target runners, [source] replacement, aliases)
    "rust-toolchain",  # rustup: a toolchain ``path`` runs that directory's cargo and rustc
    "rust-toolchain.toml",
    ".bundle",  # bundler: .bundle/config (BUNDLE_GEMFILE, build flags)
    ".irbrc",  # irb loads it from the working directory
    ".pryrc",  # pry likewise
    # editors, when the folder is opened
    ".vscode",  # tasks.json (runOn: folderOpen), launch.json, settings.json (interpreter and tool paths)
    ".idea",  # JetBrains run configurations and external tools
    ".devcontainer",  # container build and postCreate commands
    ".devcontainer.json",  # the same, at the top level
    ".zed",  # Zed: tasks.json, settings.json (language server binaries)
    ".helix",  # Helix: languages.toml (language server commands)
    ".nvim.lua",  # Neovim's exrc files
    ".nvimrc",
    ".exrc",
    ".dir-locals.el",  # Emacs directory variables (eval:)
    ".dir-locals-2.el",
)

# Names with a variable part, as full matches of the folded name.
_PATTERN = re.compile(
    r"\.?mise(\.[^./]+)?(\.local)?\.toml"  # mise.toml, .mise.local.toml, mise.<env>.toml (MISE_ENV)
    r"|\.?lefthook(-local)?\.(yml|yaml|json|jsonc|toml)"  # lefthook's hook commands, run on commit
    r"|[^/]*\.code-workspace"  # VS Code workspace files: tasks and settings, like .vscode
)

# A name protected only inside a directory of the given name: mise's config directories.
_PAIRS: frozenset[tuple[str, str]] = frozenset({(".config", "mise"), ("mise", "config.toml")})

# The protected names that a program on the host may act on while a sandbox run is going on, without the user
# doing anything: git (polled by editors), direnv (a prompt hook), the config editors reload when it appears, and
# the environment VS Code's Python extension discovers and runs. An absent one is covered by an empty read-only
# directory for the run (a tmpfs mount: about 3 ms of start-up each); the others are searched for after the run
# and removed before anything could run them.
LIVE_NAMES: tuple[str, ...] = (
    ".git",
    ".gitmodules",
    ".hg",
    ".githooks",
    ".husky",
    ".pre-commit-config.yaml",
    ".envrc",
    ".vscode",
    ".idea",
    ".devcontainer",
    ".zed",
    ".venv",
)

# Code points HFS+ ignores in names (git's is_hfs_dotgit list): ".g\u200cit" opens .git there.
_IGNORED = frozenset(
    [chr(c) for c in range(0x200C, 0x2010)]
    + [chr(c) for c in range(0x202A, 0x202F)]
    + [chr(c) for c in range(0x206A, 0x2070)]
    + ["\ufeff"]
)


def fold(name: str) -> str:
    """A name as a case-insensitive, normalizing, forgiving host filesystem may see it.

    Letter case (``.GIT`` on macOS), Unicode compatibility forms, the code points HFS+ ignores
    (``.g\u200cit``), trailing dots and spaces (Windows) and the 8.3 short name ``GIT~1``: the same spellings git
    itself refuses in trees.
    """
    text = "".join(c for c in unicodedata.normalize("NFKC", name) if c not in _IGNORED)
    text = text.casefold().rstrip(" .")
    return ".git" if text == "git~1" else text


_FOLDED = frozenset(fold(n) for n in PROTECTED_NAMES)


def is_protected_name(name: str, parent: str = "") -> bool:
    """True when an entry called ``name``, in a directory called ``parent``, is protected (both folded here)."""
    folded = fold(name)
    return folded in _FOLDED or bool(_PATTERN.fullmatch(folded)) or (fold(parent), folded) in _PAIRS


def protected_part(parts: Sequence[str]) -> str | None:
    """The first component of a relative path (as written) that makes it protected, or None."""
    for i, part in enumerate(parts):
        if is_protected_name(part, parts[i - 1] if i else ""):
            return part
    return None


def is_protected(rel: str | PurePosixPath) -> bool:
    """True when a path relative to the workspace root is, or lies under, a protected entry (at any depth)."""
    return protected_part(PurePosixPath(rel).parts) is not None

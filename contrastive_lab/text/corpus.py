"""A retrieval corpus that every install carries: the docstrings of installed libraries.

    corpus = build_docstring_corpus()          # about 4,000 entries in a few seconds
    corpus.versions                            # {"python": "3.11.9", "numpy": "2.4.6", ...}
    splits = split_by_module(corpus)           # {"train": …, "val": …, "test": …}
    rel = relevance_matrix(splits["test"])     # (Q, D) graded relevance for the metrics

Each public function or class of the walked modules with a docstring gives one
entry (the CodeSearchNet framing, on documentation):
    query     the docstring's summary: its first sentence
    document  the rest of the docstring, with the summary removed, so that the task
              is finding the explanation of a one-line request, not string matching.
A docstring that starts with a call signature (NumPy ufuncs, torch's C functions:
"add(input, other, *, alpha=1) -> Tensor") has that paragraph stripped first, and
the doctest examples (">>>" and what follows) are cut off.
Entries whose summary has < 4 or > 40 words or whose document has < 20 words
are skipped, and so is a second object with a document already seen (re-exports).

The corpus is deterministic given the installed versions, which it records: the
same in a script and in a Jupyter kernel, and in every process (sets printed
into docstrings are sorted).
Splits are made by MODULE, never by row: every entry of one module lands in the
same split, and modules that mirror each other (numpy.linalg, scipy.linalg,
torch.linalg; numpy.ma and numpy) move together, so a test query never has its
near-copy in training.
"""
from __future__ import annotations

import hashlib
import importlib
import inspect
import platform
import random
import re
import sys
import warnings
from collections import Counter
from dataclasses import dataclass, field

import torch

# The modules walked, per library. Public names come from __all__ where a module has one.
LIBRARY_MODULES: dict[str, tuple[str, ...]] = {
    "numpy": (
        "numpy", "numpy.linalg", "numpy.fft", "numpy.random", "numpy.ma", "numpy.polynomial.polynomial",
        "numpy.polynomial.chebyshev", "numpy.polynomial.legendre", "numpy.polynomial.hermite",
        "numpy.polynomial.laguerre", "numpy.lib.stride_tricks", "numpy.lib.recfunctions",
        "numpy.testing", "numpy.strings", "numpy.rec",
    ),
    "scipy": (
        "scipy.cluster.hierarchy", "scipy.cluster.vq", "scipy.constants", "scipy.fft", "scipy.integrate",
        "scipy.interpolate", "scipy.io", "scipy.linalg", "scipy.ndimage", "scipy.odr", "scipy.optimize",
        "scipy.signal", "scipy.signal.windows", "scipy.sparse", "scipy.sparse.linalg",
        "scipy.sparse.csgraph", "scipy.spatial", "scipy.spatial.distance", "scipy.spatial.transform",
        "scipy.special", "scipy.stats", "scipy.stats.qmc", "scipy.stats.contingency",
        "scipy.stats.mstats", "scipy.differentiate",
    ),
    "sklearn": tuple(f"sklearn.{m}" for m in (
        "base", "calibration", "cluster", "compose", "covariance", "cross_decomposition", "datasets",
        "decomposition", "discriminant_analysis", "dummy", "ensemble", "exceptions", "feature_extraction",
        "feature_extraction.text", "feature_extraction.image", "feature_selection", "gaussian_process",
        "gaussian_process.kernels", "impute", "inspection", "isotonic", "kernel_approximation",
        "kernel_ridge", "linear_model", "manifold", "metrics", "metrics.pairwise", "mixture",
        "model_selection", "multiclass", "multioutput", "naive_bayes", "neighbors", "neural_network",
        "pipeline", "preprocessing", "random_projection", "semi_supervised", "svm", "tree", "utils",
        "utils.validation", "utils.extmath", "utils.multiclass",
    )),
    "torch": (
        "torch", "torch.nn", "torch.nn.functional", "torch.nn.init", "torch.nn.utils", "torch.linalg",
        "torch.fft", "torch.special", "torch.distributions", "torch.optim", "torch.optim.lr_scheduler",
        "torch.autograd", "torch.utils.data", "torch.sparse", "torch.random", "torch.masked",
        "torch.nested", "torch.func", "torch.testing", "torch.amp", "torch.hub", "torch.signal.windows",
        "torch.overrides", "torch.autograd.functional", "torch.nn.utils.parametrize",
        "torch.distributions.constraints", "torch.cuda",
    ),
    "stdlib": (
        "builtins", "os", "os.path", "shutil", "pathlib", "glob", "fnmatch", "tempfile", "io", "re",
        "string", "textwrap", "difflib", "unicodedata", "json", "csv", "pickle", "copy", "pprint",
        "collections", "heapq", "bisect", "array", "enum", "functools", "itertools", "operator", "math",
        "cmath", "statistics", "random", "decimal", "fractions", "datetime", "time", "calendar",
        "hashlib", "hmac", "secrets", "base64", "binascii", "zlib", "gzip", "bz2", "lzma", "zipfile",
        "tarfile", "sqlite3", "logging", "argparse", "platform", "subprocess", "threading", "queue",
        "sched", "contextlib", "abc", "types", "typing", "inspect", "dataclasses", "weakref", "gc",
        "traceback", "warnings", "unittest", "doctest", "timeit", "urllib.parse", "urllib.request",
        "http.client", "html", "xml.etree.ElementTree", "socket", "select", "selectors", "asyncio",
        "concurrent.futures", "struct", "codecs", "locale", "gettext", "shlex", "configparser",
        "tomllib", "uuid", "ipaddress", "mimetypes", "colorsys", "graphlib", "sys", "email.utils",
        "filecmp", "ast", "tokenize", "dis", "importlib", "pkgutil", "signal", "ctypes", "ssl",
        "socketserver", "http.server", "http.cookies", "http.cookiejar", "xml.dom.minidom",
        "email.message", "smtplib", "ftplib", "imaplib", "poplib", "pdb", "bdb", "cProfile", "pstats",
        "trace", "tracemalloc", "faulthandler", "stat", "fileinput", "linecache", "netrc", "plistlib",
        "reprlib", "runpy", "sysconfig", "symtable", "keyword", "pyclbr", "py_compile", "compileall",
        "code", "codeop", "quopri", "html.parser", "urllib.robotparser", "wsgiref.util",
        "xmlrpc.client", "contextvars", "copyreg", "shelve", "optparse", "getopt", "cmd", "mailbox",
        "webbrowser", "zipapp", "pydoc", "importlib.util", "importlib.metadata", "numbers",
        "collections.abc", "multiprocessing", "errno",
    ),
}

# More text for TRAINING only: libraries every install of the course carries too
# (torch depends on sympy and networkx; matplotlib draws the course's plots). Their
# entries never enter validation or test (`build_training_extra`).
EXTRA_TRAINING_MODULES: dict[str, tuple[str, ...]] = {
    "networkx": ("networkx", "networkx.algorithms", "networkx.algorithms.approximation",
                 "networkx.algorithms.bipartite", "networkx.algorithms.centrality",
                 "networkx.algorithms.community", "networkx.algorithms.components",
                 "networkx.algorithms.connectivity", "networkx.algorithms.flow",
                 "networkx.algorithms.shortest_paths", "networkx.algorithms.traversal",
                 "networkx.algorithms.tree", "networkx.algorithms.isomorphism", "networkx.generators",
                 "networkx.linalg", "networkx.drawing", "networkx.readwrite", "networkx.classes"),
    "sympy": ("sympy", "sympy.simplify", "sympy.solvers", "sympy.matrices", "sympy.functions",
              "sympy.polys", "sympy.integrals", "sympy.series", "sympy.core", "sympy.sets", "sympy.logic",
              "sympy.ntheory", "sympy.combinatorics", "sympy.geometry", "sympy.stats", "sympy.tensor",
              "sympy.printing", "sympy.calculus", "sympy.discrete"),
    "matplotlib": tuple(f"matplotlib.{m}" for m in (
        "pyplot", "axes", "figure", "colors", "cm", "patches", "lines", "text", "transforms", "ticker",
        "dates", "path", "image", "collections", "artist", "axis", "scale", "legend", "gridspec",
        "widgets", "animation", "tri", "mlab", "cbook", "backend_bases", "colorbar", "contour",
        "quiver", "table", "font_manager", "markers", "style", "spines", "offsetbox")),
}

LIBRARIES = tuple(LIBRARY_MODULES) + tuple(EXTRA_TRAINING_MODULES)

# modules that mirror another one go to the same split as it (see split_by_module)
MIRRORS = {
    "numpy.ma": "numpy", "scipy.stats.mstats": "stats",
    "numpy.polynomial.chebyshev": "polynomial", "numpy.polynomial.legendre": "polynomial",
    "numpy.polynomial.hermite": "polynomial", "numpy.polynomial.laguerre": "polynomial",
    "scipy.signal.windows": "windows", "torch.signal.windows": "windows",
}

# names a Jupyter kernel replaces with its own function (ipykernel's `input` forwards to the
# browser): skipped everywhere, so that a script and a notebook read the same corpus
KERNEL_SHADOWED = frozenset({"builtins.input"})

MIN_QUERY_WORDS = 4
MAX_QUERY_WORDS = 40          # a longer "first sentence" is not a summary (no full stop found)
MIN_DOCUMENT_WORDS = 20

_SIGNATURE = re.compile(r"^[A-Za-z_][\w.]*\(.*\)(\s*->.*)?$", re.DOTALL)
_UNDERLINE = re.compile(r"^\s*[-=~^*]{3,}\s*$", re.MULTILINE)
_ROLE = re.compile(r":(?:math|attr|meth|func|class|ref|data|obj|mod|exc|py:\w+):")
_SENTENCE_END = re.compile(r"(?<=[a-z0-9)`'\]])\.\s+(?=[A-Z`(])")
_DOCTEST = re.compile(r"^\s*>>>", re.MULTILINE)
_EXAMPLES_HEADING = re.compile(r"(?:^|\n)[ \t]*Examples?[ \t]*:*[ \t]*(?:\n[ \t]*[-=~^]{3,}[ \t]*)?\s*$")
_STRING_SET = re.compile(r"\{'[^'{}]*'(?:, '[^'{}]*')+\}")


@dataclass(frozen=True)
class DocEntry:
    """One documented object.

    name: where it was found, "numpy.linalg.norm". library: "numpy", "scipy", "sklearn",
    "torch" or "stdlib". module: "numpy.linalg". query: the summary sentence.
    document: the rest of the docstring, summary removed, whitespace collapsed.
    """

    name: str
    library: str
    module: str
    query: str
    document: str

    @property
    def short_name(self) -> str:
        """The public name alone: "norm" for "numpy.linalg.norm"."""
        return self.name.rsplit(".", 1)[-1]

    @property
    def group(self) -> str:
        """The split unit: the module's last component ("linalg" for numpy.linalg and
        torch.linalg), or its mirror's (numpy.ma goes with numpy)."""
        return MIRRORS.get(self.module, self.module.rsplit(".", 1)[-1])


@dataclass
class DocCorpus:
    """A list of DocEntry with the versions they were read from.

    len(corpus), corpus[i], corpus.queries, corpus.documents, corpus.names,
    corpus.libraries; corpus.subset(indices) keeps the versions.
    """

    entries: list[DocEntry]
    versions: dict[str, str] = field(default_factory=dict)
    skipped_modules: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int) -> DocEntry:
        return self.entries[i]

    def __iter__(self):
        return iter(self.entries)

    @property
    def queries(self) -> list[str]:
        return [e.query for e in self.entries]

    @property
    def documents(self) -> list[str]:
        return [e.document for e in self.entries]

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.entries]

    @property
    def libraries(self) -> list[str]:
        return [e.library for e in self.entries]

    def subset(self, indices) -> "DocCorpus":
        return DocCorpus([self.entries[i] for i in indices], dict(self.versions), list(self.skipped_modules))

    def where(self, keep) -> "DocCorpus":
        """The entries for which keep(entry) is true."""
        return self.subset([i for i, e in enumerate(self.entries) if keep(e)])

    def counts(self) -> dict[str, int]:
        """Entries per library, in LIBRARIES order."""
        c = Counter(self.libraries)
        return {lib: c[lib] for lib in LIBRARIES if c[lib]}

    def fingerprint(self) -> str:
        """A short hash of every entry: equal corpora have equal fingerprints."""
        h = hashlib.sha1()
        for e in self.entries:
            h.update("\x1f".join((e.name, e.query, e.document)).encode())
        return h.hexdigest()[:12]

    def __repr__(self) -> str:
        parts = ", ".join(f"{lib} {n}" for lib, n in self.counts().items())
        return f"DocCorpus({len(self)} entries: {parts})"


def library_versions(libraries=LIBRARIES) -> dict[str, str]:
    """The versions the corpus is read from: Python itself and each imported library."""
    versions = {"python": platform.python_version()}
    for lib in libraries:
        if lib != "stdlib":
            try:
                versions[lib] = importlib.import_module(lib).__version__
            except ImportError:
                versions[lib] = "not installed"
    return versions


def clean_markup(text: str) -> str:
    """Drop reStructuredText noise: section underlines (----), roles (:math:, :attr:), '.. '
    directives' dots and backticks; collapse whitespace."""
    text = _UNDERLINE.sub(" ", text)
    text = _ROLE.sub("", text)
    text = text.replace("``", "").replace("`", "").replace(".. ", " ")
    return " ".join(text.split())


def drop_examples(doc: str) -> str:
    """A docstring without its doctest examples: cut at the first ">>>" line, with the
    "Examples" heading above it. Their printed outputs can differ between runs
    (random samples, "# may vary"), and they are code, not prose."""
    found = _DOCTEST.search(doc)
    return doc if found is None else _EXAMPLES_HEADING.sub("", doc[:found.start()]).rstrip()


def sort_string_sets(text: str) -> str:
    """Print every set of quoted strings sorted: "{'b', 'a'}" → "{'a', 'b'}". A docstring
    built with a set at import time lists it in an order that changes with the process
    (string hashing is salted per process); sorted, the corpus is the same in every run."""
    return _STRING_SET.sub(lambda m: "{" + ", ".join(sorted(m.group(0)[1:-1].split(", "))) + "}", text)


def split_docstring(doc: str) -> tuple[str, str]:
    """(query, document) of one raw docstring: the first sentence of the first paragraph,
    and everything after it. A leading call-signature paragraph is dropped first, and so
    are the doctest examples (`drop_examples`)."""
    doc = sort_string_sets(drop_examples(inspect.cleandoc(doc)))
    paragraphs = [p for p in re.split(r"\n\s*\n", doc) if p.strip()]
    if paragraphs and _SIGNATURE.match(" ".join(paragraphs[0].split())):
        paragraphs = paragraphs[1:]
    if not paragraphs:
        return "", ""
    first = clean_markup(paragraphs[0])
    pieces = _SENTENCE_END.split(first, maxsplit=1)
    query = pieces[0].rstrip(".") + "."
    rest = (pieces[1] + " " if len(pieces) > 1 else "") + " ".join(paragraphs[1:])
    return query, clean_markup(rest)


def _public_names(module) -> list[str]:
    names = getattr(module, "__all__", None)
    if not isinstance(names, (list, tuple)):
        names = [n for n in dir(module) if not n.startswith("_")]
    return sorted({n for n in names if isinstance(n, str) and not n.startswith("_")})


def _is_documented_object(obj) -> bool:
    return inspect.isroutine(obj) or inspect.isclass(obj) or type(obj).__name__ == "ufunc"


def _belongs_to(obj, library: str) -> bool:
    """False for an object another library defines (scipy re-exporting a numpy function;
    IPython's `display`, which a Jupyter kernel puts among the builtins)."""
    home = getattr(obj, "__module__", None)
    if not isinstance(home, str):
        return True
    top = home.split(".", 1)[0]
    if library == "stdlib":
        return top in sys.stdlib_module_names          # private ones too: "_io", "posix"
    return top == library


def build_docstring_corpus(libraries: dict[str, tuple[str, ...]] | None = None,
                           min_query_words: int = MIN_QUERY_WORDS,
                           min_document_words: int = MIN_DOCUMENT_WORDS) -> DocCorpus:
    """Walk the modules of `libraries` (default LIBRARY_MODULES) and return the corpus.

    Modules are visited in the given order, names in sorted order, so equal
    versions give an equal corpus (check `corpus.fingerprint()`). A module that
    fails to import is listed in `corpus.skipped_modules`, never an error.
    """
    libraries = LIBRARY_MODULES if libraries is None else libraries
    seen_objects: set[int] = set()
    seen_documents: set[str] = set()
    entries: list[DocEntry] = []
    skipped: list[str] = []
    keep_alive = []                       # hold objects so their ids stay unique during the walk
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for library, modules in libraries.items():
            for module_name in dict.fromkeys(modules):
                try:
                    module = importlib.import_module(module_name)
                except Exception:            # an optional backend missing: skip the module, say so
                    skipped.append(module_name)
                    continue
                for name in _public_names(module):
                    if f"{module_name}.{name}" in KERNEL_SHADOWED:
                        continue
                    try:
                        obj = getattr(module, name)
                    except Exception:
                        continue
                    if not _is_documented_object(obj) or id(obj) in seen_objects:
                        continue
                    seen_objects.add(id(obj))
                    keep_alive.append(obj)
                    raw = getattr(obj, "__doc__", None)
                    if not isinstance(raw, str) or not _belongs_to(obj, library):
                        continue
                    query, document = split_docstring(raw)
                    if (not min_query_words <= len(query.split()) <= MAX_QUERY_WORDS
                            or len(document.split()) < min_document_words or document in seen_documents):
                        continue
                    seen_documents.add(document)
                    entries.append(DocEntry(f"{module_name}.{name}", library, module_name, query, document))
    return DocCorpus(entries, library_versions(libraries), skipped)


def build_training_extra() -> DocCorpus:
    """The training-only corpus: the docstrings of EXTRA_TRAINING_MODULES (networkx, sympy,
    matplotlib), built like the main one. Add its pairs to training, never to evaluation:
    more (query, document) pairs from other libraries, in the same documentation style."""
    return build_docstring_corpus(EXTRA_TRAINING_MODULES)


def split_by_module(corpus: DocCorpus, fractions: dict[str, float] | None = None,
                    seed: int = 0, by_library: bool = True) -> dict[str, DocCorpus]:
    """Split by module group, never by row: {"train": …, "val": …, **other splits}.

    Args:
        corpus: the entries to split.
        fractions: share of ENTRIES wanted in each held-out split (default
            {"val": 0.15, "test": 0.2}); "train" gets the rest.
        seed: the order in which groups are dealt out.
        by_library: deal each library's groups separately (a group belongs to the
            library most of its entries come from), so every library keeps about its
            share in every split. Without it, libraries made of many small modules
            (scikit-learn) land almost entirely in the held-out splits, and training
            never sees their style.
    Groups (DocEntry.group) are shuffled with `seed`; each goes to the first
    held-out split it still fits in (up to 110 % of its share), else to train.
    A group larger than a quarter of a split's share (of its library, with
    by_library) never goes to that split, so no held-out split is one big module
    (numpy's or torch's top level).
    A group is never cut in two, and the held-out shares come out close to the
    fractions asked for.
    """
    fractions = {"val": 0.15, "test": 0.2} if fractions is None else dict(fractions)
    if "train" in fractions:
        raise ValueError("fractions names the held-out splits only; train gets the rest")
    if any(f <= 0 for f in fractions.values()) or sum(fractions.values()) >= 1:
        raise ValueError(f"fractions must be > 0 and sum to < 1, got {fractions}")
    sizes = Counter(e.group for e in corpus)
    libraries_of = {}
    for e in corpus:
        libraries_of.setdefault(e.group, Counter())[e.library] += 1
    owner = {g: (min(c, key=lambda lib: (-c[lib], lib)) if by_library else "") for g, c in libraries_of.items()}
    where = {}
    for library in sorted(set(owner.values())):
        groups = sorted(g for g in sizes if owner[g] == library)
        random.Random(seed).shuffle(groups)
        n = sum(sizes[g] for g in groups)
        target = {name: f * n for name, f in fractions.items()}
        filled = dict.fromkeys(fractions, 0)
        for g in groups:
            where[g] = "train"
            for name in fractions:
                if sizes[g] <= target[name] / 4 and filled[name] + sizes[g] <= 1.1 * target[name]:
                    where[g] = name
                    filled[name] += sizes[g]
                    break
    out = {"train": corpus.where(lambda e: where[e.group] == "train")}
    for name in fractions:
        out[name] = corpus.where(lambda e, name=name: where[e.group] == name)
    return out


def same_operation(a: DocEntry, b: DocEntry) -> bool:
    """The labelling rule for "describes the same operation": the same public name
    (case-insensitive) in two different modules, e.g. numpy.cumsum and torch.cumsum,
    numpy.linalg.norm and scipy.linalg.norm. A noisy rule, by design simple:
    scipy.stats.norm (a distribution) and numpy.linalg.norm share a name too."""
    return a.module != b.module and a.short_name.lower() == b.short_name.lower()


def relevance_matrix(queries: DocCorpus, documents: DocCorpus | None = None) -> torch.Tensor:
    """Graded relevance (Q, D) float32 of every document for every query.

    2 for the query's own document (same entry), 1 for a document of the same
    operation in another module (`same_operation`), 0 otherwise. `documents`
    defaults to the queries' own corpus (the usual retrieval set-up).
    """
    documents = queries if documents is None else documents
    rel = torch.zeros(len(queries), len(documents))
    by_name: dict[str, list[int]] = {}
    for j, d in enumerate(documents):
        by_name.setdefault(d.short_name.lower(), []).append(j)
    for i, q in enumerate(queries):
        for j in by_name.get(q.short_name.lower(), []):
            d = documents[j]
            if d.name == q.name:
                rel[i, j] = 2.0
            elif same_operation(q, d):
                rel[i, j] = 1.0
    return rel


def truncate_words(text: str, n: int) -> str:
    """The first n whitespace-separated words of text (all of it when shorter)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    words = text.split()
    return text if len(words) <= n else " ".join(words[:n])


def load_paraphrase_set(name: str = "sentence-transformers/stsb", split: str = "test"):
    """A public paraphrase set through Hugging Face `datasets` (a maintained loader), when it can be had.

    Returns (pairs, "") with pairs a list of (sentence1, sentence2, score in [0, 1])
    — STS-B by default — or (None, reason) when `datasets` is not installed or the
    download fails (offline). It never raises for lack of network.
    """
    try:
        import datasets
    except ImportError:
        return None, "the `datasets` package is not installed (pip install datasets)"
    try:
        ds = datasets.load_dataset(name, split=split)
        pairs = list(zip(ds["sentence1"], ds["sentence2"], (float(s) for s in ds["score"])))
    except Exception as error:                      # offline, or the set moved: say so, go on
        return None, f"could not load {name} ({type(error).__name__})"
    return pairs, ""

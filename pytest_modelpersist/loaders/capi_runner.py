"""Run a frozen GraphDef (``.pb``) or a SavedModel through TensorFlow's C API.

This is a standalone script, run by path::

    python capi_runner.py request.json

It loads ``libtensorflow_framework.so.2`` and ``libtensorflow_cc.so.2`` with
ctypes and calls the C API the way TensorFlowSharp, the Go, Java and Rust
bindings do. It never imports the ``tensorflow`` Python package (and checks
that it did not before it reports success).

Request (JSON)::

    {"kind": "pb" | "savedmodel",
     "path": "...",                      # .pb file or SavedModel directory
     "tags": ["serve"],                  # SavedModel only
     "feeds": {"x:0": "<key in inputs npz>"},
     "fetches": ["out:0", ...],
     "inputs_npz": "...", "outputs_npz": "...",
     "lib_dir": ".../site-packages/tensorflow",
     "config_hex": "..."}               # optional serialized ConfigProto

Outputs are written as ``output_0`` .. ``output_{N-1}`` with ``np.savez``.
Exit codes: 0 success, 2 bad request / usage, 3 TensorFlow or lookup error,
4 the tensorflow Python package got imported after all.
If the environment variable ``MODELPERSIST_CAPI_MODULES_OUT`` names a file,
``sorted(sys.modules)`` is written there as JSON before exiting with success.
"""

import os
import sys

# Run by path, sys.path[0] is this directory: keep sibling modules from
# shadowing real packages (a loaders/keras.py, loaders/h5py.py, ...).
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import ctypes
import faulthandler

# Everything that loads OpenSSL must be imported BEFORE the TensorFlow libraries
# are loaded with RTLD_GLOBAL: importing CPython's _hashlib afterwards segfaults
# (numpy.random -> secrets -> hmac -> _hashlib is how FACTS.md hit it). Once
# imported first, hashlib/hmac/numpy.random keep working after the load.
import hashlib  # noqa: F401
import hmac  # noqa: F401
import json
import zipfile  # noqa: F401  (np.savez / np.load)

import numpy as np
import numpy.random  # noqa: F401


def _sibling_module(name, relative):
    """A numpy-only module of the plugin, loaded by path (this script imports no package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, os.path.join(_HERE, relative))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Byte strings ending in NUL bytes travel exactly (numpy's fixed-width bytes would cut them).
byte_strings = _sibling_module("_modelpersist_byte_strings", "../byte_strings.py")

faulthandler.enable()

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_TF = 3
EXIT_TF_IMPORTED = 4

# numpy dtype <-> TF_DataType (tensorflow/c/tf_datatype.h)
_NP_TO_TF = {
    np.dtype(np.float32): 1,  # TF_FLOAT
    np.dtype(np.float64): 2,  # TF_DOUBLE
    np.dtype(np.int32): 3,  # TF_INT32
    np.dtype(np.uint8): 4,  # TF_UINT8
    np.dtype(np.int16): 5,  # TF_INT16
    np.dtype(np.int8): 6,  # TF_INT8
    np.dtype(np.complex64): 8,  # TF_COMPLEX64
    np.dtype(np.int64): 9,  # TF_INT64
    np.dtype(np.bool_): 10,  # TF_BOOL
    np.dtype(np.uint16): 17,  # TF_UINT16
    np.dtype(np.complex128): 18,  # TF_COMPLEX128
    np.dtype(np.float16): 19,  # TF_HALF
    np.dtype(np.uint32): 22,  # TF_UINT32
    np.dtype(np.uint64): 23,  # TF_UINT64
}
try:  # bfloat16 as numpy sees it (TensorFlow's own dependency; no TensorFlow import)
    import ml_dtypes

    _NP_TO_TF[np.dtype(ml_dtypes.bfloat16)] = 14  # TF_BFLOAT16
except ImportError:  # pragma: no cover - TensorFlow always brings it
    pass
_TF_TO_NP = {v: k for k, v in _NP_TO_TF.items()}
_TF_TYPE_NAMES = {7: "TF_STRING", 14: "TF_BFLOAT16", 20: "TF_RESOURCE", 21: "TF_VARIANT"}
TF_STRING = 7
#: sizeof(TF_TString) (tensorflow/core/platform/ctstring_internal.h): a TF_STRING tensor's
#: buffer is an array of these, filled and read with TF_StringInit/Copy/GetDataPointer/GetSize.
TSTRING_SIZE = 24


class RunnerError(Exception):
    def __init__(self, message, code=EXIT_TF):
        super().__init__(message)
        self.code = code


class TF_Output(ctypes.Structure):
    _fields_ = [("oper", ctypes.c_void_p), ("index", ctypes.c_int)]


def _load_libs(lib_dir):
    lib_dir = os.fspath(lib_dir)
    framework = os.path.join(lib_dir, "libtensorflow_framework.so.2")
    cc = os.path.join(lib_dir, "libtensorflow_cc.so.2")
    for so in (framework, cc):
        if not os.path.exists(so):
            raise RunnerError(f"TensorFlow library not found: {so}", EXIT_USAGE)
    try:
        ctypes.CDLL(framework, mode=ctypes.RTLD_GLOBAL)
        lib = ctypes.CDLL(cc, mode=ctypes.RTLD_GLOBAL)
    except OSError as exc:
        raise RunnerError(f"loading TensorFlow libraries from {lib_dir} failed: {exc}") from exc
    _declare(lib)
    return lib


def _declare(lib):
    vp = ctypes.c_void_p
    sz = ctypes.c_size_t
    i64p = ctypes.POINTER(ctypes.c_int64)
    sigs = {
        "TF_Version": ([], ctypes.c_char_p),
        "TF_NewStatus": ([], vp),
        "TF_DeleteStatus": ([vp], None),
        "TF_GetCode": ([vp], ctypes.c_int),
        "TF_Message": ([vp], ctypes.c_char_p),
        "TF_NewGraph": ([], vp),
        "TF_DeleteGraph": ([vp], None),
        "TF_NewImportGraphDefOptions": ([], vp),
        "TF_DeleteImportGraphDefOptions": ([vp], None),
        "TF_NewBufferFromString": ([ctypes.c_char_p, sz], vp),
        "TF_NewBuffer": ([], vp),
        "TF_DeleteBuffer": ([vp], None),
        "TF_GraphImportGraphDef": ([vp, vp, vp, vp], None),
        "TF_NewSessionOptions": ([], vp),
        "TF_DeleteSessionOptions": ([vp], None),
        "TF_SetConfig": ([vp, ctypes.c_char_p, sz, vp], None),
        "TF_NewSession": ([vp, vp, vp], vp),
        "TF_LoadSessionFromSavedModel": (
            [vp, vp, ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, vp, vp, vp],
            vp,
        ),
        "TF_CloseSession": ([vp, vp], None),
        "TF_DeleteSession": ([vp, vp], None),
        "TF_GraphOperationByName": ([vp, ctypes.c_char_p], vp),
        "TF_OperationNumOutputs": ([vp], ctypes.c_int),
        "TF_OperationOutputType": ([TF_Output], ctypes.c_int),
        "TF_AllocateTensor": ([ctypes.c_int, i64p, ctypes.c_int, sz], vp),
        "TF_DeleteTensor": ([vp], None),
        "TF_TensorData": ([vp], vp),
        "TF_TensorType": ([vp], ctypes.c_int),
        "TF_NumDims": ([vp], ctypes.c_int),
        "TF_Dim": ([vp, ctypes.c_int], ctypes.c_int64),
        "TF_TensorByteSize": ([vp], sz),
        "TF_StringInit": ([vp], None),
        "TF_StringCopy": ([vp, ctypes.c_char_p, sz], None),
        "TF_StringGetDataPointer": ([vp], ctypes.c_void_p),
        "TF_StringGetSize": ([vp], sz),
        "TF_SessionRun": (
            [
                vp,  # session
                vp,  # run_options
                ctypes.POINTER(TF_Output), ctypes.POINTER(vp), ctypes.c_int,  # inputs
                ctypes.POINTER(TF_Output), ctypes.POINTER(vp), ctypes.c_int,  # outputs
                ctypes.POINTER(vp), ctypes.c_int,  # targets
                vp,  # run_metadata
                vp,  # status
            ],
            None,
        ),
    }
    for name, (argtypes, restype) in sigs.items():
        fn = getattr(lib, name)
        fn.argtypes = argtypes
        fn.restype = restype


class Status:
    def __init__(self, lib):
        self.lib = lib
        self.ptr = lib.TF_NewStatus()

    def check(self, step, target):
        """Raise RunnerError("<step> failed for <target>: <TF_Message>") unless TF_OK."""
        code = self.lib.TF_GetCode(self.ptr)
        if code != 0:
            msg = (self.lib.TF_Message(self.ptr) or b"").decode("utf-8", "replace")
            msg = " ".join(msg.split())  # one line
            raise RunnerError(f"{step} failed for {target}: {msg} (TF_Code {code})")

    def close(self):
        if self.ptr:
            self.lib.TF_DeleteStatus(self.ptr)
            self.ptr = None


def _parse_tensor_name(name):
    op, sep, idx = name.rpartition(":")
    if sep and idx.isdigit():
        return op, int(idx)
    return name, 0


def _resolve(lib, graph, name, what, path):
    op_name, index = _parse_tensor_name(name)
    oper = lib.TF_GraphOperationByName(graph, op_name.encode())
    if not oper:
        raise RunnerError(
            f"{what} tensor {name!r}: no operation named {op_name!r} in the graph of {path}"
        )
    n = lib.TF_OperationNumOutputs(oper)
    if index >= n:
        raise RunnerError(
            f"{what} tensor {name!r}: operation {op_name!r} in {path} has {n} output(s),"
            f" no output {index}"
        )
    return TF_Output(oper, index)


def _string_tensor(lib, arr, name):
    """A TF_STRING tensor of `arr` (bytes or str elements; str is encoded as UTF-8)."""
    items = [v if isinstance(v, bytes) else str(v).encode("utf-8") for v in arr.reshape(-1)]
    dims = (ctypes.c_int64 * max(arr.ndim, 1))(*arr.shape)
    t = lib.TF_AllocateTensor(TF_STRING, dims, arr.ndim, TSTRING_SIZE * len(items))
    if not t:
        raise RunnerError(f"TF_AllocateTensor failed for string feed {name!r} ({arr.shape})")
    base = lib.TF_TensorData(t)
    for i, item in enumerate(items):
        at = base + i * TSTRING_SIZE
        lib.TF_StringInit(at)
        lib.TF_StringCopy(at, item, len(item))
    return t


def _from_string_tensor(lib, t, shape):
    base = lib.TF_TensorData(t)
    n = int(np.prod(shape, dtype=np.int64))
    items = []
    for i in range(n):
        at = base + i * TSTRING_SIZE
        items.append(ctypes.string_at(lib.TF_StringGetDataPointer(at), lib.TF_StringGetSize(at)))
    return byte_strings.from_list(items, shape)


def _to_tensor(lib, arr, name):
    arr = np.ascontiguousarray(arr)
    if arr.dtype.kind in "SUO":
        return _string_tensor(lib, arr, name)
    dt = _NP_TO_TF.get(arr.dtype)
    if dt is None:
        raise RunnerError(f"feed {name!r}: unsupported dtype {arr.dtype}", EXIT_USAGE)
    dims = (ctypes.c_int64 * max(arr.ndim, 1))(*arr.shape)
    t = lib.TF_AllocateTensor(dt, dims, arr.ndim, arr.nbytes)
    if not t:
        raise RunnerError(f"TF_AllocateTensor failed for feed {name!r} ({arr.dtype}, {arr.shape})")
    if arr.nbytes:
        ctypes.memmove(lib.TF_TensorData(t), arr.ctypes.data, arr.nbytes)
    return t


def _from_tensor(lib, t, name):
    dt = lib.TF_TensorType(t)
    if dt == TF_STRING:
        shape = tuple(lib.TF_Dim(t, i) for i in range(lib.TF_NumDims(t)))
        return _from_string_tensor(lib, t, shape)
    np_dt = _TF_TO_NP.get(dt)
    if np_dt is None:
        tname = _TF_TYPE_NAMES.get(dt, f"TF_DataType {dt}")
        raise RunnerError(f"fetch {name!r}: unsupported output type {tname}")
    shape = tuple(lib.TF_Dim(t, i) for i in range(lib.TF_NumDims(t)))
    nbytes = lib.TF_TensorByteSize(t)
    expected = int(np.prod(shape, dtype=np.int64)) * np_dt.itemsize
    if nbytes != expected:
        raise RunnerError(f"fetch {name!r}: {nbytes} bytes for shape {shape} of {np_dt}")
    if nbytes == 0:
        return np.zeros(shape, dtype=np_dt)
    raw = ctypes.string_at(lib.TF_TensorData(t), nbytes)
    return np.frombuffer(raw, dtype=np_dt).reshape(shape).copy()


def _read_inputs(req, feeds):
    """Tensor name -> array, from the request's inputs npz."""
    inputs = {}
    if feeds:
        with np.load(req["inputs_npz"], allow_pickle=False) as z:
            members = byte_strings.unpack(z)
        for tname, key in feeds.items():
            if key not in members:
                raise RunnerError(
                    f"feed {tname!r}: key {key!r} not in {req['inputs_npz']}", EXIT_USAGE
                )
            inputs[tname] = members[key]
    return inputs


def _open_session(lib, kind, path, req, graph, opts, status):
    """A TF_Session on ``graph``: a GraphDef file imported, or a SavedModel loaded."""
    if kind == "pb":
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise RunnerError(f"reading {path} failed: {exc}") from exc
        buf = lib.TF_NewBufferFromString(data, len(data))
        iopts = lib.TF_NewImportGraphDefOptions()
        try:
            lib.TF_GraphImportGraphDef(graph, buf, iopts, status.ptr)
        finally:
            lib.TF_DeleteImportGraphDefOptions(iopts)
            lib.TF_DeleteBuffer(buf)
        status.check("TF_GraphImportGraphDef", path)
        session = lib.TF_NewSession(graph, opts, status.ptr)
        status.check("TF_NewSession", path)
    else:
        tags = [str(t).encode() for t in (req.get("tags") or ["serve"])]
        ctags = (ctypes.c_char_p * len(tags))(*tags)
        session = lib.TF_LoadSessionFromSavedModel(
            opts, None, os.fspath(path).encode(), ctags, len(tags), graph, None, status.ptr
        )
        tag_list = [t.decode() for t in tags]
        status.check("TF_LoadSessionFromSavedModel", f"{path} (tags {tag_list})")
    return session


def _parse_request(req):
    """(kind, path, feeds, fetches) of a request; RunnerError(EXIT_USAGE) when malformed."""
    kind = req.get("kind")
    path = req.get("path")
    if kind not in ("pb", "savedmodel") or not path:
        raise RunnerError(f"bad request: kind={kind!r} path={path!r}", EXIT_USAGE)
    feeds = dict(req.get("feeds") or {})
    fetches = list(req.get("fetches") or [])
    if not fetches:
        raise RunnerError("bad request: no fetches", EXIT_USAGE)
    return kind, path, feeds, fetches


def run(req):
    kind, path, feeds, fetches = _parse_request(req)
    inputs = _read_inputs(req, feeds)
    lib = _load_libs(req["lib_dir"])
    status = Status(lib)
    graph = lib.TF_NewGraph()
    opts = lib.TF_NewSessionOptions()
    session = None
    in_tensors, out_vals = [], None
    try:
        if req.get("config_hex"):
            cfg = bytes.fromhex(req["config_hex"])
            lib.TF_SetConfig(opts, cfg, len(cfg), status.ptr)
            status.check("TF_SetConfig", "the session config")

        session = _open_session(lib, kind, path, req, graph, opts, status)

        feed_names = list(inputs)
        in_ops = (TF_Output * max(len(feed_names), 1))(
            *[_resolve(lib, graph, n, "feed", path) for n in feed_names]
        )
        out_ops = (TF_Output * len(fetches))(
            *[_resolve(lib, graph, n, "fetch", path) for n in fetches]
        )
        for n in feed_names:
            in_tensors.append(_to_tensor(lib, inputs[n], n))
        in_vals = (ctypes.c_void_p * max(len(in_tensors), 1))(*in_tensors)
        out_vals = (ctypes.c_void_p * len(fetches))()
        lib.TF_SessionRun(
            session, None,
            in_ops, in_vals, len(feed_names),
            out_ops, out_vals, len(fetches),
            None, 0,
            None, status.ptr,
        )
        status.check("TF_SessionRun", path)
        results = [_from_tensor(lib, out_vals[i], fetches[i]) for i in range(len(fetches))]
    finally:
        for t in in_tensors:
            lib.TF_DeleteTensor(t)
        if out_vals is not None:
            for i in range(len(fetches)):
                if out_vals[i]:
                    lib.TF_DeleteTensor(out_vals[i])
        if session:
            cleanup = Status(lib)
            lib.TF_CloseSession(session, cleanup.ptr)
            lib.TF_DeleteSession(session, cleanup.ptr)
            cleanup.close()
        lib.TF_DeleteSessionOptions(opts)
        lib.TF_DeleteGraph(graph)
        status.close()

    np.savez(req["outputs_npz"],
             **byte_strings.pack({f"output_{i}": r for i, r in enumerate(results)}))


def main(argv):
    if len(argv) != 2:
        print("usage: capi_runner.py request.json", file=sys.stderr)
        return EXIT_USAGE
    try:
        with open(argv[1], encoding="utf-8") as f:
            req = json.load(f)
        run(req)
    except RunnerError as exc:
        print(f"capi_runner: {exc}", file=sys.stderr)
        return exc.code
    except (OSError, ValueError, KeyError) as exc:
        print(f"capi_runner: bad request {argv[1]}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    imported = sorted(m for m in sys.modules if m == "tensorflow" or m.startswith("tensorflow."))
    if imported:
        print(
            f"capi_runner: the tensorflow Python package was imported: {imported[:5]}",
            file=sys.stderr,
        )
        return EXIT_TF_IMPORTED
    modules_out = os.environ.get("MODELPERSIST_CAPI_MODULES_OUT")
    if modules_out:
        with open(modules_out, "w", encoding="utf-8") as f:
            json.dump(sorted(sys.modules), f)
    return EXIT_OK


def preload(lib_dir):
    """Load the TensorFlow libraries once: a warm interpreter (warm_server.py) does this, then
    forks a child per request."""
    _load_libs(lib_dir)


if __name__ == "__main__":
    sys.exit(main(sys.argv))

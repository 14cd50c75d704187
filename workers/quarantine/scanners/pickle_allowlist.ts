/**
 * The callables a pickle may import (issue #6: decide by an allowlist, never a deny-list).
 * Enough for real PyTorch (zip and legacy) and numpy checkpoints; everything else is a
 * threat. The deny-list below only raises the severity of well-known code-running gadgets to
 * `critical`; it never decides whether a callable is allowed.
 * @module
 */

/** How an allowed global may be used. */
export type GlobalUse =
  /** Only referenced (a type or constant handed to an allowed callable), never called. */
  | "reference"
  /** May be called by REDUCE/NEWOBJ/INST/OBJ. */
  | "call";

const STORAGE_TYPES = [
  "FloatStorage",
  "DoubleStorage",
  "HalfStorage",
  "BFloat16Storage",
  "LongStorage",
  "IntStorage",
  "ShortStorage",
  "CharStorage",
  "ByteStorage",
  "BoolStorage",
  "ComplexFloatStorage",
  "ComplexDoubleStorage",
  "QUInt8Storage",
  "QInt8Storage",
  "QInt32Storage",
  "QUInt4x2Storage",
  "QUInt2x4Storage",
  "UntypedStorage",
];

const TORCH_DTYPES = [
  "float32",
  "float",
  "float64",
  "double",
  "float16",
  "half",
  "bfloat16",
  "int64",
  "long",
  "int32",
  "int",
  "int16",
  "short",
  "int8",
  "uint8",
  "bool",
  "complex64",
  "complex128",
  "float8_e4m3fn",
  "float8_e5m2",
];

const NUMPY_CORE = ["numpy.core.multiarray", "numpy._core.multiarray"];
const NUMPY_NUMERIC = ["numpy.core.numeric", "numpy._core.numeric"];

function entries(): [string, GlobalUse][] {
  const list: [string, GlobalUse][] = [
    ["collections.OrderedDict", "call"],
    ["collections.defaultdict", "call"],
    ["builtins.set", "call"],
    ["builtins.frozenset", "call"],
    ["builtins.slice", "call"],
    ["builtins.range", "call"],
    ["builtins.complex", "call"],
    ["builtins.bytearray", "call"],
    ["builtins.object", "reference"],
    ["builtins.int", "reference"],
    ["builtins.float", "reference"],
    ["builtins.bool", "reference"],
    ["builtins.list", "reference"],
    ["builtins.dict", "reference"],
    ["builtins.tuple", "reference"],
    ["copyreg._reconstructor", "call"],
    ["_codecs.encode", "call"],
    ["torch._utils._rebuild_tensor", "call"],
    ["torch._utils._rebuild_tensor_v2", "call"],
    ["torch._utils._rebuild_tensor_v3", "call"],
    ["torch._utils._rebuild_parameter", "call"],
    ["torch._utils._rebuild_parameter_with_state", "call"],
    ["torch._utils._rebuild_qtensor", "call"],
    ["torch._utils._rebuild_sparse_tensor", "call"],
    ["torch._utils._rebuild_meta_tensor_no_storage", "call"],
    ["torch._utils._rebuild_device_tensor_from_numpy", "call"],
    ["torch._tensor._rebuild_from_type_v2", "call"],
    ["torch.serialization._get_layout", "call"],
    ["torch.Size", "call"],
    ["torch.device", "call"],
    ["torch.Tensor", "reference"],
    ["torch.nn.parameter.Parameter", "call"],
    ["torch.strided", "reference"],
    ["torch.sparse_coo", "reference"],
    ["torch.contiguous_format", "reference"],
    ["torch.preserve_format", "reference"],
    ["torch.per_tensor_affine", "reference"],
    ["torch.per_channel_affine", "reference"],
    ["numpy.ndarray", "reference"],
    ["numpy.dtype", "call"],
    ["argparse.Namespace", "call"],
  ];
  for (const name of STORAGE_TYPES) list.push([`torch.${name}`, "reference"]);
  for (const name of TORCH_DTYPES) list.push([`torch.${name}`, "reference"]);
  // Legacy (torch < 0.4) tensor types, named in the tar format's tensor records.
  for (const name of STORAGE_TYPES) {
    if (name.endsWith("Storage") && !name.startsWith("Q") && name !== "UntypedStorage") {
      list.push([`torch.${name.replace(/Storage$/, "Tensor")}`, "reference"]);
    }
  }
  for (const module of NUMPY_CORE) {
    list.push([`${module}._reconstruct`, "call"], [`${module}.scalar`, "call"]);
  }
  for (const module of NUMPY_NUMERIC) list.push([`${module}._frombuffer`, "call"]);
  return list;
}

/** Allowed globals, `module.name` → use. */
export const ALLOWED_GLOBALS: ReadonlyMap<string, GlobalUse> = new Map(entries());

/**
 * Allowed callables that call one of their arguments: that argument, when it is a global,
 * must itself be allowed as `call` (else `_rebuild_from_type_v2(os.system, …)` would call
 * a merely referenced global).
 */
export const HIGHER_ORDER: ReadonlySet<string> = new Set([
  "torch._tensor._rebuild_from_type_v2",
  "copyreg._reconstructor",
  "collections.defaultdict",
]);

/** Element size in bytes of each torch storage type. */
export const STORAGE_ELEMENT: ReadonlyMap<string, { dtype: string; bytes: number }> = new Map([
  ["torch.FloatStorage", { dtype: "F32", bytes: 4 }],
  ["torch.DoubleStorage", { dtype: "F64", bytes: 8 }],
  ["torch.HalfStorage", { dtype: "F16", bytes: 2 }],
  ["torch.BFloat16Storage", { dtype: "BF16", bytes: 2 }],
  ["torch.LongStorage", { dtype: "I64", bytes: 8 }],
  ["torch.IntStorage", { dtype: "I32", bytes: 4 }],
  ["torch.ShortStorage", { dtype: "I16", bytes: 2 }],
  ["torch.CharStorage", { dtype: "I8", bytes: 1 }],
  ["torch.ByteStorage", { dtype: "U8", bytes: 1 }],
  ["torch.BoolStorage", { dtype: "BOOL", bytes: 1 }],
]);

/** Python 2 module names that Python 3's unpickler maps (`_compat_pickle.IMPORT_MAPPING`). */
export const PY2_MODULES: ReadonlyMap<string, string> = new Map([
  ["__builtin__", "builtins"],
  ["copy_reg", "copyreg"],
  ["exceptions", "builtins"],
  ["cPickle", "pickle"],
  ["commands", "subprocess"],
  ["UserDict", "collections"],
  ["urllib2", "urllib.request"],
  ["httplib", "http.client"],
  ["__main__", "__main__"],
]);

const CRITICAL_MODULES = new Set([
  "os",
  "posix",
  "nt",
  "subprocess",
  "sys",
  "runpy",
  "pty",
  "socket",
  "shutil",
  "importlib",
  "pickle",
  "_pickle",
  "marshal",
  "code",
  "codeop",
  "ctypes",
  "webbrowser",
  "pip",
  "multiprocessing",
  "platform",
  "timeit",
  "cProfile",
  "profile",
  "pdb",
  "bdb",
  "trace",
  "types",
  "asyncio",
  "tempfile",
  "urllib",
  "requests",
  "http",
  "ftplib",
  "telnetlib",
  "smtplib",
  "xmlrpc",
  "dill",
  "joblib",
  "io",
  "_io",
  "functools",
  "operator",
  "torch.hub",
  "torch.jit",
  "__main__",
]);

const CRITICAL_NAMES = new Set([
  "builtins.eval",
  "builtins.exec",
  "builtins.compile",
  "builtins.open",
  "builtins.__import__",
  "builtins.getattr",
  "builtins.setattr",
  "builtins.delattr",
  "builtins.globals",
  "builtins.locals",
  "builtins.vars",
  "builtins.input",
  "builtins.breakpoint",
  "builtins.help",
  "builtins.memoryview",
  "torch.load",
  "torch.save",
  "numpy.load",
  "numpy.testing._private.utils.runstring",
  "_codecs.decode",
]);

/**
 * Severity of a global that is not allowed: `critical` for known code-running gadgets,
 * `high` for everything else (unknown is never safe).
 */
export function severityOfDenied(callable: string): "critical" | "high" {
  if (CRITICAL_NAMES.has(callable)) return "critical";
  for (let dot = callable.indexOf("."); dot > 0; dot = callable.indexOf(".", dot + 1)) {
    if (CRITICAL_MODULES.has(callable.slice(0, dot))) return "critical";
  }
  return "high";
}

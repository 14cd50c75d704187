/**
 * PyTorch and numpy containers around pickles: the zip checkpoint (every member, not only
 * data.pkl), npz, the legacy stacked-pickle format and the legacy tar format. Each pickle
 * goes through the VM; each storage is checked against what the pickle declares.
 * @module
 */
import { BufferSource, type ByteSource, FileSource, readAt } from "./_source.ts";
import { FormatError } from "./errors.ts";
import { scanNpy } from "./npy.ts";
import { looksLikePickle, type PickleResult, type PValue, runPickle } from "./pickle.ts";
import { STORAGE_ELEMENT } from "./pickle_allowlist.ts";
import type { Finding } from "./types.ts";
import { openMember, type ZipArchive, type ZipEntry } from "./zip.ts";

/** A storage a checkpoint's pickle refers to, located in the file. */
export interface StorageLocation {
  key: string;
  /** safetensors dtype of the storage's elements. */
  dtype: string;
  elementSize: number;
  /** Elements, as the pickle declares. */
  numel: number;
  /** Absolute file offset of the storage's first byte. */
  offset: number;
}

/** What a checkpoint scan learned beyond its findings (used by the converter). */
export interface CheckpointScan {
  findings: Finding[];
  /** The main pickle (data.pkl, or the legacy main pickle). */
  main: PickleResult | null;
  /** Storages by key, when they lie uncompressed in the file. */
  storages: Map<string, StorageLocation>;
  /** "little" unless the archive says otherwise. */
  byteorder: string;
}

/** Legacy torch magic number (first pickle of the stacked format). */
export const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
const LEGACY_PROTOCOL = 1001n;
const KNOWN_ZIP_META = new Set([
  "version",
  ".format_version",
  "byteorder",
  ".storage_alignment",
  ".data/serialization_id",
  ".data/version",
]);

/** Options shared by the container scanners. */
export interface ContainerOptions {
  onRead?: (bytes: number) => void;
  signal?: AbortSignal;
  /** Where findings go as they are found (kept when a later part fails to parse). */
  findings?: Finding[];
}

type Add = (finding: Finding) => void;

/** A torch storage persistent id: `('storage', type, key, location, numel[, view])`. */
export function storageRef(
  persid: PValue,
): { type: string; key: string; location: string; numel: number } | null {
  if (persid.t !== "tuple") return null;
  const [tag, type, key, location, numel] = persid.items;
  if (tag?.t !== "str" || tag.v !== "storage") return null;
  if (type?.t !== "global" || key?.t !== "str" || location?.t !== "str" || numel?.t !== "int") {
    return null;
  }
  if (numel.v < 0n || numel.v > BigInt(Number.MAX_SAFE_INTEGER)) return null;
  return { type: type.name, key: key.v, location: location.v, numel: Number(numel.v) };
}

function elementOf(type: string): { dtype: string; bytes: number } | null {
  if (type === "torch.UntypedStorage") return { dtype: "U8", bytes: 1 };
  return STORAGE_ELEMENT.get(type) ?? null;
}

/** Runs a pickle and then reports bytes after its STOP. */
function pickleMember(source: ByteSource, member: string, findings: Finding[]): PickleResult {
  const add: Add = (finding) => findings.push(finding);
  const result = runPickle(source, { member, sink: findings });
  if (!source.atEnd()) {
    add({
      stage: "pickle",
      rule: "pickle.trailing_data",
      severity: "medium",
      message: `${
        source.length - source.position
      } bytes follow the pickle's STOP in "${member}" (hidden data)`,
      offset: source.base + source.position,
      member,
    });
  }
  return result;
}

/**
 * Classifies a zip: a PyTorch checkpoint (a root with data.pkl), an npz (only .npy members)
 * or neither (invalid).
 */
export function zipKind(archive: ZipArchive): "pytorch-zip" | "npz" | null {
  if (archive.entries.some((e) => /^[^/]+\/data\.pkl$/.test(e.name))) return "pytorch-zip";
  if (archive.entries.every((e) => e.name.endsWith(".npy"))) return "npz";
  return null;
}

/**
 * Scans every member of a PyTorch zip checkpoint.
 * @throws {FormatError} when a pickle or the layout cannot be parsed, or a storage the
 * pickle declares is missing or of the wrong size
 */
export function scanTorchZip(
  file: Deno.FsFile,
  archive: ZipArchive,
  options: ContainerOptions = {},
): CheckpointScan {
  const findings: Finding[] = options.findings ?? [];
  const add: Add = (finding) => findings.push(finding);
  const first = archive.entries[0];
  // PyTorch's reader takes the archive root from the first record's directory.
  const root = first?.name.includes("/") ? first.name.slice(0, first.name.indexOf("/")) : null;
  if (root === null) {
    throw new FormatError(
      "MALFORMED",
      `Invalid PyTorch zip: first member "${first?.name}" is not in a directory`,
      0,
    );
  }
  const byName = new Map<string, ZipEntry>();
  for (const entry of archive.entries) byName.set(entry.name, entry);
  const dataPkl = byName.get(`${root}/data.pkl`);
  if (dataPkl === undefined) {
    throw new FormatError(
      "MALFORMED",
      `Invalid PyTorch zip: no "${root}/data.pkl" (the archive root is "${root}")`,
      0,
    );
  }
  const pickles = archive.entries.filter((e) => /^[^/]+\/data\.pkl$/.test(e.name));
  if (pickles.length > 1) {
    add({
      stage: "zip",
      rule: "zip.multiple_roots",
      severity: "high",
      message: `Archive has ${pickles.length} data.pkl members (${
        pickles.map((e) => `"${e.name}"`).join(", ")
      }); readers disagree on which one loads`,
      member: pickles[1]?.name ?? "",
    });
  }
  const main = pickleMember(openMember(file, dataPkl, options.onRead), dataPkl.name, findings);

  // Storages the pickle declares.
  const storages = new Map<string, StorageLocation>();
  for (const persid of main.persistentIds) {
    const ref = storageRef(persid.id);
    if (ref === null) {
      throw new FormatError(
        "MALFORMED",
        `Invalid PyTorch zip: persistent id at offset ${persid.offset} is not a storage reference`,
        persid.offset,
      );
    }
    const element = elementOf(ref.type);
    if (element === null) {
      throw new FormatError(
        "UNSUPPORTED",
        `Invalid PyTorch zip: storage type "${ref.type}" at offset ${persid.offset} is not supported`,
        persid.offset,
      );
    }
    const name = `${root}/data/${ref.key}`;
    const entry = byName.get(name);
    if (entry === undefined) {
      throw new FormatError(
        "MALFORMED",
        `Invalid PyTorch zip: storage "${ref.key}" declared at offset ${persid.offset} has no member "${name}"`,
        persid.offset,
      );
    }
    const bytes = ref.numel * element.bytes;
    if (entry.size !== bytes) {
      throw new FormatError(
        "MALFORMED",
        `Invalid PyTorch zip: member "${name}" has ${entry.size} bytes, the pickle declares ${ref.numel} × ${element.bytes} = ${bytes}`,
        entry.dataOffset,
      );
    }
    const known = storages.get(ref.key);
    if (known !== undefined && (known.dtype !== element.dtype || known.numel !== ref.numel)) {
      throw new FormatError(
        "MALFORMED",
        `Invalid PyTorch zip: storage "${ref.key}" is declared twice with different types`,
        persid.offset,
      );
    }
    if (entry.method === 0) {
      storages.set(ref.key, {
        key: ref.key,
        dtype: element.dtype,
        elementSize: element.bytes,
        numel: ref.numel,
        offset: entry.dataOffset,
      });
    }
  }

  let byteorder = "little";
  for (const entry of archive.entries) {
    options.signal?.throwIfAborted();
    if (entry === dataPkl) continue;
    const inRoot = entry.name.startsWith(`${root}/`);
    const rel = inRoot ? entry.name.slice(root.length + 1) : entry.name;
    if (!inRoot) {
      add({
        stage: "zip",
        rule: "zip.outside_root",
        severity: "high",
        message: `Member "${entry.name}" lies outside the archive root "${root}"`,
        offset: entry.headerOffset,
        member: entry.name,
      });
    }
    if (entry.name.endsWith(".pkl")) {
      pickleMember(openMember(file, entry, options.onRead), entry.name, findings);
      continue;
    }
    if (inRoot && rel.startsWith("data/") && storages.has(rel.slice(5))) continue;
    if (
      inRoot && rel.startsWith("data/") &&
      [...main.persistentIds].some((p) => storageRef(p.id)?.key === rel.slice(5))
    ) continue;
    if (inRoot && KNOWN_ZIP_META.has(rel)) {
      const text = metaText(file, entry);
      if (rel === "byteorder") {
        if (text !== "little" && text !== "big") {
          throw new FormatError(
            "MALFORMED",
            `Invalid PyTorch zip: byteorder is "${text}"`,
            entry.dataOffset,
          );
        }
        byteorder = text;
      }
      continue;
    }
    if (
      inRoot && (rel.startsWith("code/") || rel.startsWith("constants") || rel.startsWith("extra/"))
    ) {
      add({
        stage: "zip",
        rule: "zip.torchscript_code",
        severity: "high",
        message:
          `Member "${entry.name}" is TorchScript code, which runs when the archive is loaded`,
        offset: entry.headerOffset,
        member: entry.name,
      });
    } else {
      add({
        stage: "zip",
        rule: rel.startsWith("data/") ? "zip.unreferenced_member" : "zip.unexpected_member",
        severity: "medium",
        message: rel.startsWith("data/")
          ? `Member "${entry.name}" is not referenced by the pickle (hidden member)`
          : `Member "${entry.name}" is not part of a PyTorch checkpoint`,
        offset: entry.headerOffset,
        member: entry.name,
      });
    }
    if (entry.size >= 2) {
      const head = openMember(file, entry).readBytes(Math.min(entry.size, 32));
      if (looksLikePickle(head)) {
        pickleMember(openMember(file, entry, options.onRead), entry.name, findings);
      }
    }
  }
  return { findings, main, storages, byteorder };
}

function metaText(file: Deno.FsFile, entry: ZipEntry): string {
  if (entry.size > 256) {
    throw new FormatError(
      "MALFORMED",
      `Invalid PyTorch zip: metadata member "${entry.name}" has ${entry.size} bytes`,
      entry.dataOffset,
    );
  }
  const bytes = openMember(file, entry).readBytes(entry.size);
  const text = new TextDecoder("latin1").decode(bytes).replace(/\n$/, "");
  if (/[^\x20-\x7e]/.test(text)) {
    throw new FormatError(
      "MALFORMED",
      `Invalid PyTorch zip: metadata member "${entry.name}" is not text`,
      entry.dataOffset,
    );
  }
  return text;
}

/** Scans every member of an npz archive as a .npy. */
export function scanNpz(
  file: Deno.FsFile,
  archive: ZipArchive,
  options: ContainerOptions = {},
): Finding[] {
  const findings: Finding[] = options.findings ?? [];
  for (const entry of archive.entries) {
    options.signal?.throwIfAborted();
    scanNpy(openMember(file, entry, options.onRead), { member: entry.name, findings });
  }
  return findings;
}

function intValue(value: PValue): bigint | null {
  return value.t === "int" ? value.v : null;
}

/**
 * Scans a file that starts with a pickle: the legacy torch format (magic number, protocol,
 * sys_info, main pickle, storage keys, raw storages) or plain stacked pickles.
 * @returns the format name and the scan
 * @throws {FormatError} for anything that does not parse
 */
export function scanPickleFile(file: Deno.FsFile, size: number, options: ContainerOptions = {}): {
  format: "torch-legacy" | "pickle";
  scan: CheckpointScan;
} {
  const findings: Finding[] = options.findings ?? [];
  const add: Add = (finding) => findings.push(finding);
  const source = new FileSource(file, {
    start: 0,
    length: size,
    ...(options.onRead ? { onRead: options.onRead } : {}),
  });
  const first = runPickle(source, { sink: findings });
  if (intValue(first.value) !== LEGACY_MAGIC) {
    // Plain pickles: every stacked pickle is scanned; bytes that are not one are hidden data.
    let index = 1;
    while (!source.atEnd()) {
      options.signal?.throwIfAborted();
      const at = source.position;
      const head = readAt(file, at, Math.min(16, size - at));
      if (
        !looksLikePickle(head) &&
        !(head[0] !== undefined && head[0] >= 0x28 && head[0] <= 0x98 && head[0] !== 0x2e)
      ) {
        add({
          stage: "pickle",
          rule: "pickle.trailing_data",
          severity: "medium",
          message: `${size - at} bytes after pickle ${index} are not a pickle (hidden data)`,
          offset: at,
        });
        break;
      }
      runPickle(source, { sink: findings });
      index++;
    }
    return {
      format: "pickle",
      scan: { findings, main: first, storages: new Map(), byteorder: "little" },
    };
  }
  const protocol = runPickle(source, { sink: findings });
  if (intValue(protocol.value) !== LEGACY_PROTOCOL) {
    throw new FormatError(
      "MALFORMED",
      `Invalid legacy torch file: protocol version pickle is not ${LEGACY_PROTOCOL}`,
      protocol.end,
    );
  }
  runPickle(source, { sink: findings }); // sys_info
  const main = runPickle(source, { sink: findings });
  const keysAt = source.position;
  const keys = runPickle(source, { sink: findings });
  if (keys.value.t !== "list" || keys.value.items.some((k) => k.t !== "str")) {
    throw new FormatError(
      "MALFORMED",
      "Invalid legacy torch file: storage keys are not a list of strings",
      keysAt,
    );
  }
  const declared = new Map<string, { dtype: string; bytes: number; numel: number }>();
  for (const persid of main.persistentIds) {
    const ref = storageRef(persid.id);
    if (ref === null) {
      throw new FormatError(
        "MALFORMED",
        `Invalid legacy torch file: persistent id at offset ${persid.offset} is not a storage reference`,
        persid.offset,
      );
    }
    const element = elementOf(ref.type);
    if (element === null) {
      throw new FormatError(
        "UNSUPPORTED",
        `Invalid legacy torch file: storage type "${ref.type}" is not supported`,
        persid.offset,
      );
    }
    if (!declared.has(ref.key)) declared.set(ref.key, { ...element, numel: ref.numel });
  }
  const storages = new Map<string, StorageLocation>();
  for (const item of keys.value.items) {
    options.signal?.throwIfAborted();
    const key = (item as { v: string }).v;
    const storage = declared.get(key);
    if (storage === undefined) {
      throw new FormatError(
        "MALFORMED",
        `Invalid legacy torch file: storage key "${key}" is not referenced by the pickle`,
        keysAt,
      );
    }
    if (storages.has(key)) {
      throw new FormatError(
        "MALFORMED",
        `Invalid legacy torch file: storage key "${key}" is listed twice`,
        keysAt,
      );
    }
    const at = source.position;
    const numel = Number(new DataView(source.readBytes(8).slice().buffer).getBigInt64(0, true));
    if (numel !== storage.numel) {
      throw new FormatError(
        "MALFORMED",
        `Invalid legacy torch file: storage "${key}" at offset ${at} has ${numel} elements, the pickle declares ${storage.numel}`,
        at,
      );
    }
    storages.set(key, {
      key,
      dtype: storage.dtype,
      elementSize: storage.bytes,
      numel,
      offset: source.base + source.position,
    });
    source.skip(numel * storage.bytes);
  }
  if (storages.size !== declared.size) {
    throw new FormatError(
      "MALFORMED",
      `Invalid legacy torch file: ${declared.size - storages.size} declared storages have no data`,
      source.position,
    );
  }
  if (!source.atEnd()) {
    add({
      stage: "pickle",
      rule: "torch.trailing_data",
      severity: "medium",
      message: `${size - source.position} bytes follow the last storage (hidden data)`,
      offset: source.position,
    });
  }
  return { format: "torch-legacy", scan: { findings, main, storages, byteorder: "little" } };
}

// ---- legacy tar format ------------------------------------------------------------------

/** One regular file in a tar archive. */
interface TarMember {
  name: string;
  offset: number;
  size: number;
}

function octal(bytes: Uint8Array, what: string, at: number): number {
  const text = new TextDecoder("latin1").decode(bytes).replace(/[\0 ]+$/, "").trim();
  if (!/^[0-7]{0,12}$/.test(text)) {
    throw new FormatError("MALFORMED", `Invalid tar: bad ${what} field at offset ${at}`, at);
  }
  return text === "" ? 0 : parseInt(text, 8);
}

/** Whether a 512-byte block is a ustar header. */
export function isTar(head: Uint8Array): boolean {
  const magic = new TextDecoder("latin1").decode(head.subarray(257, 263));
  return head.length >= 512 && (magic === "ustar\0" || magic === "ustar ");
}

/**
 * Reads a tar archive strictly: checksums, regular files only (PAX headers parsed for the
 * path), zero end blocks, nothing after them but padding.
 */
function readTar(file: Deno.FsFile, size: number, add: Add): TarMember[] {
  const members: TarMember[] = [];
  let at = 0;
  let paxPath: string | null = null;
  while (at + 512 <= size) {
    const block = readAt(file, at, 512);
    if (block.every((b) => b === 0)) {
      // End of archive; what follows must be zeros too.
      const rest = readAt(file, at, Math.min(size - at, 1 << 20));
      if (!rest.every((b) => b === 0) || size - at > 1 << 20) {
        add({
          stage: "tar",
          rule: "tar.trailing_data",
          severity: "medium",
          message: `Data follows the end of the tar archive at offset ${at}`,
          offset: at,
        });
      }
      return members;
    }
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : block[i] ?? 0;
    if (octal(block.subarray(148, 156), "checksum", at) !== sum) {
      throw new FormatError(
        "MALFORMED",
        `Invalid tar: header checksum mismatch at offset ${at}`,
        at,
      );
    }
    const type = String.fromCharCode(block[156] ?? 0);
    const memberSize = octal(block.subarray(124, 136), "size", at);
    const prefix = new TextDecoder("latin1").decode(block.subarray(345, 500)).replace(/\0.*$/s, "");
    let name = new TextDecoder("latin1").decode(block.subarray(0, 100)).replace(/\0.*$/s, "");
    if (prefix) name = `${prefix}/${name}`;
    const dataAt = at + 512;
    if (dataAt + memberSize > size) {
      throw new FormatError("TRUNCATED", `Invalid tar: member "${name}" runs past the end`, at);
    }
    if (type === "x") {
      const records = new TextDecoder().decode(readAt(file, dataAt, Math.min(memberSize, 1 << 16)));
      paxPath = /(?:^|\n)\d+ path=([^\n]*)\n/.exec(records)?.[1] ?? null;
    } else if (type === "0" || type === "\0") {
      members.push({ name: paxPath ?? name, offset: dataAt, size: memberSize });
      paxPath = null;
    } else if (type === "5") {
      paxPath = null;
    } else {
      add({
        stage: "tar",
        rule: "tar.special_member",
        severity: "high",
        message: `Tar member "${name}" has type "${type}" (link or special file)`,
        offset: at,
        member: name,
      });
      paxPath = null;
    }
    at = dataAt + Math.ceil(memberSize / 512) * 512;
  }
  throw new FormatError("TRUNCATED", "Invalid tar: no end-of-archive blocks", at);
}

/**
 * Scans the legacy tar checkpoint format (members sys_info, pickle, storages, tensors): every
 * pickle in every member goes through the VM.
 */
export function scanTorchTar(
  file: Deno.FsFile,
  size: number,
  options: ContainerOptions = {},
): Finding[] {
  const findings: Finding[] = options.findings ?? [];
  const add: Add = (finding) => findings.push(finding);
  const members = readTar(file, size, add);
  const byName = new Map<string, TarMember>();
  for (const member of members) {
    if (byName.has(member.name)) {
      add({
        stage: "tar",
        rule: "tar.duplicate_member",
        severity: "high",
        message: `Tar member "${member.name}" appears twice`,
        offset: member.offset,
        member: member.name,
      });
    }
    byName.set(member.name, member);
  }
  for (const required of ["sys_info", "pickle", "storages", "tensors"]) {
    if (!byName.has(required)) {
      throw new FormatError("MALFORMED", `Invalid legacy torch tar: no "${required}" member`, 0);
    }
  }
  const sourceOf = (m: TarMember) =>
    new FileSource(file, {
      start: m.offset,
      length: m.size,
      ...(options.onRead ? { onRead: options.onRead } : {}),
    });
  for (const member of members) {
    options.signal?.throwIfAborted();
    const source = sourceOf(member);
    if (member.name === "sys_info" || member.name === "pickle") {
      pickleMember(source, member.name, findings);
    } else if (member.name === "storages") {
      scanTarStorages(source, member.name, findings);
    } else if (member.name === "tensors") {
      scanTarTensors(source, member.name, findings);
    } else {
      add({
        stage: "tar",
        rule: "tar.unexpected_member",
        severity: "medium",
        message: `Tar member "${member.name}" is not part of a legacy torch checkpoint`,
        offset: member.offset,
        member: member.name,
      });
      if (
        member.size >= 2 && looksLikePickle(readAt(file, member.offset, Math.min(32, member.size)))
      ) {
        pickleMember(source, member.name, findings);
      }
    }
  }
  return findings;
}

function countOf(result: PickleResult, what: string, source: ByteSource): number {
  const n = intValue(result.value);
  if (n === null || n < 0n || n > 10_000_000n) {
    throw new FormatError(
      "MALFORMED",
      `Invalid legacy torch tar: ${what} count is not a small integer`,
      source.base,
    );
  }
  return Number(n);
}

function scanTarStorages(source: ByteSource, member: string, findings: Finding[]): void {
  const count = runPickle(source, { member, sink: findings });
  for (let i = countOf(count, "storage", source); i > 0; i--) {
    const args = runPickle(source, { member, sink: findings });
    const type = args.value.t === "tuple" ? args.value.items[2] : undefined;
    const element = type?.t === "global" ? elementOf(type.name) : null;
    if (element === null) {
      throw new FormatError(
        "MALFORMED",
        `Invalid legacy torch tar: bad storage record in "${member}"`,
        source.base + source.position,
      );
    }
    const numel = Number(new DataView(source.readBytes(8).slice().buffer).getBigInt64(0, true));
    if (numel < 0) {
      throw new FormatError(
        "MALFORMED",
        `Invalid legacy torch tar: negative storage size in "${member}"`,
        source.base + source.position,
      );
    }
    source.skip(numel * element.bytes);
  }
  pickleMember(source, member, findings);
}

function scanTarTensors(source: ByteSource, member: string, findings: Finding[]): void {
  const add: Add = (finding) => findings.push(finding);
  const count = runPickle(source, { member, sink: findings });
  for (let i = countOf(count, "tensor", source); i > 0; i--) {
    runPickle(source, { member, sink: findings });
    const ndim = new DataView(source.readBytes(4).slice().buffer).getInt32(0, true);
    if (ndim < 0 || ndim > 64) {
      throw new FormatError(
        "MALFORMED",
        `Invalid legacy torch tar: tensor with ${ndim} dimensions`,
        source.base + source.position,
      );
    }
    source.skip(4 + 16 * ndim + 8);
  }
  if (!source.atEnd()) {
    add({
      stage: "tar",
      rule: "tar.trailing_data",
      severity: "medium",
      message: `Bytes follow the last tensor record in "${member}"`,
      offset: source.base + source.position,
      member,
    });
  }
}

/** A byte source over a decompressed wrapper's content (gzip). */
export function bufferSource(bytes: Uint8Array): ByteSource {
  return new BufferSource(bytes);
}

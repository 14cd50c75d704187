/**
 * IP address parsing and classification for the connection-time egress check (spec 22 §1.3:
 * "dial only public addresses after resolving"). A resolver's answer is text; this module
 * accepts only the canonical forms a resolver produces (dotted-quad IPv4, RFC 4291 IPv6 with
 * an optional dotted-quad tail) and classifies the address. Anything else is malformed and
 * refused: a parser that guesses is how `0x7f.1` reaches loopback.
 * @module
 */

/** Why an address may not be dialled, or `public` when it may. */
export type AddressClass =
  | "public"
  | "loopback"
  | "private"
  | "link-local"
  | "cgnat"
  | "multicast"
  | "reserved"
  | "cloud-metadata"
  | "malformed";

/** The verdict on one resolved address. */
export interface AddressVerdict {
  /** Whether a connection to this address may be opened. */
  isAllowed: boolean;
  /** The address class. */
  class: AddressClass;
  /** The special-purpose range that matched (`10.0.0.0/8`), or the reason it is malformed. */
  range: string;
  /** For IPv4-mapped, NAT64 and 6to4 forms: the embedded IPv4 address that was judged. */
  embedded?: string;
}

const DECIMAL_OCTET = /^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$/;

/**
 * Parses a canonical dotted-quad IPv4 address (no leading zeros, no hex, no short forms).
 * @returns the 32-bit value, or null when the text is not canonical IPv4
 */
export function parseIPv4(text: string): number | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  let value = 0;
  for (const part of parts) {
    if (!DECIMAL_OCTET.test(part)) return null;
    value = value * 256 + Number(part);
  }
  return value;
}

/** Formats a 32-bit value as dotted-quad. */
export function formatIPv4(value: number): string {
  return [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255].join(".");
}

const HEXTET = /^[0-9a-fA-F]{1,4}$/;

/**
 * Parses an RFC 4291 IPv6 address: eight hextets, one `::`, an optional dotted-quad in the
 * last 32 bits. Zone ids (`%eth0`) and brackets are refused.
 * @returns eight 16-bit groups, or null when malformed
 */
export function parseIPv6(text: string): Uint16Array | null {
  if (text.length < 2 || text.length > 45 || !/^[0-9a-fA-F:.]+$/.test(text)) return null;
  let head = text;
  let tail4: number | null = null;
  const lastColon = text.lastIndexOf(":");
  if (text.includes(".")) {
    tail4 = parseIPv4(text.slice(lastColon + 1));
    if (tail4 === null) return null;
    head = text.slice(0, lastColon + 1);
    // "::1.2.3.4" keeps its "::"; "a:b:…:1.2.3.4" leaves a trailing ":" to drop.
    if (!head.endsWith("::")) head = head.slice(0, -1);
  }
  const groupsWanted = tail4 === null ? 8 : 6;
  const halves = head.split("::");
  if (halves.length > 2) return null;
  const parse = (s: string): number[] | null => {
    if (s === "") return [];
    const out: number[] = [];
    for (const g of s.split(":")) {
      if (!HEXTET.test(g)) return null;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const left = parse(halves[0] ?? "");
  const right = halves.length === 2 ? parse(halves[1] ?? "") : [];
  if (left === null || right === null) return null;
  let groups: number[];
  if (halves.length === 2) {
    const missing = groupsWanted - left.length - right.length;
    if (missing < 1) return null;
    groups = [...left, ...new Array<number>(missing).fill(0), ...right];
  } else {
    if (left.length !== groupsWanted) return null;
    groups = left;
  }
  if (tail4 !== null) groups.push(tail4 >>> 16, tail4 & 0xffff);
  return Uint16Array.from(groups);
}

interface V4Range {
  base: number;
  bits: number;
  class: Exclude<AddressClass, "public" | "malformed">;
  name: string;
}

function v4(cidr: string, cls: V4Range["class"]): V4Range {
  const [addr = "", bits = "32"] = cidr.split("/");
  const base = parseIPv4(addr);
  if (base === null) throw new TypeError(`Bad range "${cidr}"`);
  return { base, bits: Number(bits), class: cls, name: cidr };
}

/**
 * Special-purpose IPv4 ranges (IANA registry, RFC 6890), most specific first: the metadata
 * endpoints sit inside link-local, CGNAT and 192.0.0.0/24 and must be named as such.
 */
const V4_RANGES: readonly V4Range[] = [
  v4("169.254.169.254/32", "cloud-metadata"), // AWS, GCP, Azure, OpenStack IMDS
  v4("169.254.170.2/32", "cloud-metadata"), // AWS ECS task metadata
  v4("100.100.100.200/32", "cloud-metadata"), // Alibaba Cloud
  v4("192.0.0.192/32", "cloud-metadata"), // Oracle Cloud
  v4("0.0.0.0/8", "reserved"),
  v4("10.0.0.0/8", "private"),
  v4("100.64.0.0/10", "cgnat"),
  v4("127.0.0.0/8", "loopback"),
  v4("169.254.0.0/16", "link-local"),
  v4("172.16.0.0/12", "private"),
  v4("192.0.0.0/24", "reserved"),
  v4("192.0.2.0/24", "reserved"),
  v4("192.88.99.0/24", "reserved"),
  v4("192.168.0.0/16", "private"),
  v4("198.18.0.0/15", "reserved"),
  v4("198.51.100.0/24", "reserved"),
  v4("203.0.113.0/24", "reserved"),
  v4("224.0.0.0/4", "multicast"),
  v4("240.0.0.0/4", "reserved"),
];

function inV4(value: number, range: V4Range): boolean {
  if (range.bits === 0) return true;
  const shift = 32 - range.bits;
  return (value >>> shift) === (range.base >>> shift);
}

/** Classifies a parsed IPv4 address. */
function classifyV4(value: number): AddressVerdict {
  for (const range of V4_RANGES) {
    if (inV4(value, range)) return { isAllowed: false, class: range.class, range: range.name };
  }
  return { isAllowed: true, class: "public", range: "global" };
}

interface V6Range {
  groups: Uint16Array;
  bits: number;
  class: Exclude<AddressClass, "public" | "malformed"> | "embedded-ipv4";
  name: string;
  /** Bit offset of an embedded IPv4 address (mapped, NAT64, 6to4). */
  embeddedAt?: number;
}

function v6(cidr: string, cls: V6Range["class"], embeddedAt?: number): V6Range {
  const [addr = "", bits = "128"] = cidr.split("/");
  const groups = parseIPv6(addr);
  if (groups === null) throw new TypeError(`Bad range "${cidr}"`);
  return {
    groups,
    bits: Number(bits),
    class: cls,
    name: cidr,
    ...(embeddedAt === undefined ? {} : { embeddedAt }),
  };
}

/** Special-purpose IPv6 ranges (IANA registry, RFC 6890 and later), most specific first. */
const V6_RANGES: readonly V6Range[] = [
  v6("fd00:ec2::254/128", "cloud-metadata"), // AWS IMDS over IPv6
  v6("::/128", "reserved"), // unspecified
  v6("::1/128", "loopback"),
  v6("::ffff:0:0/96", "embedded-ipv4", 96), // IPv4-mapped
  v6("::ffff:0:0:0/96", "reserved"), // IPv4-translated (RFC 2765)
  v6("::/96", "reserved"), // IPv4-compatible (deprecated)
  v6("64:ff9b::/96", "embedded-ipv4", 96), // NAT64 well-known prefix
  v6("64:ff9b:1::/48", "private"), // local-use NAT64
  v6("100::/64", "reserved"), // discard-only
  v6("2001::/32", "reserved"), // Teredo: tunnels to an obfuscated IPv4 address
  v6("2001:db8::/32", "reserved"), // documentation
  v6("2001::/23", "reserved"), // IETF protocol assignments (benchmarking, ORCHID, …)
  v6("2002::/16", "embedded-ipv4", 16), // 6to4
  v6("3fff::/20", "reserved"), // documentation (RFC 9637)
  v6("5f00::/16", "reserved"), // SRv6 SIDs
  v6("fc00::/7", "private"), // unique local
  v6("fe80::/10", "link-local"),
  v6("fec0::/10", "private"), // site-local (deprecated)
  v6("ff00::/8", "multicast"),
];

function inV6(groups: Uint16Array, range: V6Range): boolean {
  let bits = range.bits;
  for (let i = 0; i < 8 && bits > 0; i++) {
    const take = Math.min(16, bits);
    const mask = (0xffff << (16 - take)) & 0xffff;
    if (((groups[i] ?? 0) & mask) !== ((range.groups[i] ?? 0) & mask)) return false;
    bits -= take;
  }
  return true;
}

function embeddedV4(groups: Uint16Array, bitOffset: number): number {
  const g = bitOffset / 16;
  return (((groups[g] ?? 0) << 16) | (groups[g + 1] ?? 0)) >>> 0;
}

/** Classifies a parsed IPv6 address. */
function classifyV6(groups: Uint16Array): AddressVerdict {
  for (const range of V6_RANGES) {
    if (!inV6(groups, range)) continue;
    if (range.class === "embedded-ipv4") {
      // A mapped, NAT64 or 6to4 form is judged by the IPv4 address it reaches.
      const inner = embeddedV4(groups, range.embeddedAt ?? 96);
      const verdict = classifyV4(inner);
      return {
        isAllowed: verdict.isAllowed,
        class: verdict.class,
        range: `${range.name} → ${verdict.range}`,
        embedded: formatIPv4(inner),
      };
    }
    return { isAllowed: false, class: range.class, range: range.name };
  }
  // Only global unicast (2000::/3) is allocated for the public Internet.
  if (((groups[0] ?? 0) & 0xe000) !== 0x2000) {
    return { isAllowed: false, class: "reserved", range: "outside 2000::/3" };
  }
  return { isAllowed: true, class: "public", range: "2000::/3" };
}

/**
 * Connection-time check of one resolved address: only public unicast may be dialled.
 * Loopback, private, link-local, CGNAT, multicast, reserved and cloud-metadata addresses are
 * refused, in IPv4 and IPv6, including IPv4-mapped, NAT64 and 6to4 forms of them.
 * @param address an address as a resolver returns it (`93.184.216.34`, `2606:2800::1`)
 * @returns the verdict; `isAllowed` is true only for public addresses
 * @example
 * ```ts
 * checkResolvedAddress("::ffff:127.0.0.1"); // { isAllowed: false, class: "loopback", … }
 * ```
 */
export function checkResolvedAddress(address: string): AddressVerdict {
  const v4value = parseIPv4(address);
  if (v4value !== null) return classifyV4(v4value);
  const groups = address.includes(":") ? parseIPv6(address) : null;
  if (groups !== null) return classifyV6(groups);
  return {
    isAllowed: false,
    class: "malformed",
    range: "not a canonical IPv4 or IPv6 address",
  };
}

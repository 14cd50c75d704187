import { deepEqual, equal } from "node:assert/strict";
import { checkResolvedAddress, parseIPv6 } from "./ip.ts";

const cases: { address: string; class: string; embedded?: string }[] = [
  // IPv4
  { address: "93.184.216.34", class: "public" },
  { address: "8.8.8.8", class: "public" },
  { address: "127.0.0.1", class: "loopback" },
  { address: "127.255.255.254", class: "loopback" },
  { address: "10.1.2.3", class: "private" },
  { address: "172.16.0.1", class: "private" },
  { address: "172.31.255.255", class: "private" },
  { address: "172.32.0.1", class: "public" },
  { address: "192.168.1.1", class: "private" },
  { address: "169.254.1.1", class: "link-local" },
  { address: "169.254.169.254", class: "cloud-metadata" },
  { address: "169.254.170.2", class: "cloud-metadata" },
  { address: "100.100.100.200", class: "cloud-metadata" },
  { address: "192.0.0.192", class: "cloud-metadata" },
  { address: "100.64.0.1", class: "cgnat" },
  { address: "100.127.255.255", class: "cgnat" },
  { address: "100.128.0.1", class: "public" },
  { address: "224.0.0.1", class: "multicast" },
  { address: "239.255.255.250", class: "multicast" },
  { address: "0.0.0.0", class: "reserved" },
  { address: "0.1.2.3", class: "reserved" },
  { address: "192.0.2.1", class: "reserved" },
  { address: "198.18.0.1", class: "reserved" },
  { address: "198.51.100.7", class: "reserved" },
  { address: "203.0.113.9", class: "reserved" },
  { address: "240.0.0.1", class: "reserved" },
  { address: "255.255.255.255", class: "reserved" },
  // IPv6
  { address: "2606:2800:220:1:248:1893:25c8:1946", class: "public" },
  { address: "2a00:1450:4001:81a::200e", class: "public" },
  { address: "::1", class: "loopback" },
  { address: "0:0:0:0:0:0:0:1", class: "loopback" },
  { address: "::", class: "reserved" },
  { address: "fe80::1", class: "link-local" },
  { address: "febf::1", class: "link-local" },
  { address: "fc00::1", class: "private" },
  { address: "fd12:3456::1", class: "private" },
  { address: "fec0::1", class: "private" },
  { address: "ff02::1", class: "multicast" },
  { address: "fd00:ec2::254", class: "cloud-metadata" },
  { address: "2001:db8::1", class: "reserved" },
  { address: "2001::1", class: "reserved" },
  { address: "2001:2::1", class: "reserved" },
  { address: "3fff::1", class: "reserved" },
  { address: "100::1", class: "reserved" },
  { address: "4000::1", class: "reserved" },
  { address: "::1.2.3.4", class: "reserved" },
  { address: "64:ff9b:1::1", class: "private" },
  // Embedded IPv4: judged by the address they reach
  { address: "::ffff:127.0.0.1", class: "loopback", embedded: "127.0.0.1" },
  { address: "::ffff:7f00:1", class: "loopback", embedded: "127.0.0.1" },
  { address: "::FFFF:169.254.169.254", class: "cloud-metadata", embedded: "169.254.169.254" },
  { address: "::ffff:10.0.0.1", class: "private", embedded: "10.0.0.1" },
  { address: "::ffff:8.8.8.8", class: "public", embedded: "8.8.8.8" },
  { address: "64:ff9b::127.0.0.1", class: "loopback", embedded: "127.0.0.1" },
  { address: "64:ff9b::a9fe:a9fe", class: "cloud-metadata", embedded: "169.254.169.254" },
  { address: "64:ff9b::808:808", class: "public", embedded: "8.8.8.8" },
  { address: "2002:7f00:1::1", class: "loopback", embedded: "127.0.0.1" },
  { address: "2002:c0a8:101::1", class: "private", embedded: "192.168.1.1" },
  { address: "2002:808:808::1", class: "public", embedded: "8.8.8.8" },
  // Malformed: never guessed at
  { address: "", class: "malformed" },
  { address: "localhost", class: "malformed" },
  { address: "0x7f.0.0.1", class: "malformed" },
  { address: "0177.0.0.1", class: "malformed" },
  { address: "2130706433", class: "malformed" },
  { address: "127.1", class: "malformed" },
  { address: "127.0.0.01", class: "malformed" },
  { address: "256.0.0.1", class: "malformed" },
  { address: "1.2.3.4.5", class: "malformed" },
  { address: " 8.8.8.8", class: "malformed" },
  { address: "[::1]", class: "malformed" },
  { address: "fe80::1%eth0", class: "malformed" },
  { address: "1::2::3", class: "malformed" },
  { address: "1:2:3:4:5:6:7:8:9", class: "malformed" },
  { address: "12345::1", class: "malformed" },
  { address: "::ffff:127.0.0.256", class: "malformed" },
  { address: "1:2:3:4:5:6:7::8", class: "malformed" },
];

for (const c of cases) {
  Deno.test(`checkResolvedAddress() classifies "${c.address}" as ${c.class}`, () => {
    const verdict = checkResolvedAddress(c.address);
    equal(verdict.class, c.class, verdict.range);
    equal(verdict.isAllowed, c.class === "public");
    equal(verdict.embedded, c.embedded);
  });
}

Deno.test("parseIPv6() expands :: and a dotted-quad tail to eight groups", () => {
  deepEqual([...(parseIPv6("1::ffff:1.2.3.4") ?? [])], [1, 0, 0, 0, 0, 0xffff, 0x0102, 0x0304]);
  deepEqual([...(parseIPv6("::") ?? [])], [0, 0, 0, 0, 0, 0, 0, 0]);
  equal(parseIPv6("::1:2:3:4:5:6:7:8"), null);
});

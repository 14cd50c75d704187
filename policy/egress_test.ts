import { deepEqual, equal } from "node:assert/strict";
import { checkUrl, matchesDestination } from "./egress.ts";

const LIMITS = { maxUrlLength: 100, maxQueryLength: 20 };

const cases: { name: string; url: string; rule: string | null }[] = [
  { name: "accepts a URL at the length limit", url: `https://a.com/${"x".repeat(86)}`, rule: null },
  {
    name: "refuses a URL over the length limit",
    url: `https://a.com/${"x".repeat(87)}`,
    rule: "egress.url.length",
  },
  { name: "accepts a query at the limit", url: `https://a.com/?${"q".repeat(19)}`, rule: null },
  {
    name: "refuses a query over the limit",
    url: `https://a.com/?${"q".repeat(20)}`,
    rule: "egress.url.query_length",
  },
  {
    name: "refuses a 64-character DNS label",
    url: `https://${"a".repeat(64)}.com/`,
    rule: "egress.url.host",
  },
  {
    name: "refuses an IPv4 literal whose last label is hex",
    url: "https://1.0x1/",
    rule: "egress.url.ip_literal",
  },
  {
    name: "refuses a percent-encoded host separator",
    url: "https://a.com%252f.b.com/",
    rule: "egress.url.host_percent",
  },
  { name: "refuses a CR", url: "https://a.com/\r", rule: "egress.url.chars" },
  { name: "refuses a non-breaking space", url: "https://a.com/\u00a0", rule: "egress.url.chars" },
  {
    name: "refuses a raw at-sign after the port",
    url: "https://a.com:443@b.com/",
    rule: "egress.url.userinfo",
  },
  {
    name: "refuses an upper-case percent-encoded dot segment",
    url: "https://a.com/%2E/x",
    rule: "egress.url.mismatch",
  },
  {
    name: "refuses a WHATWG-percent-encoded apostrophe in the query",
    url: "https://a.com/?a='b'",
    rule: "egress.url.mismatch",
  },
  {
    name: "refuses an encoded slash in the path (a decoding server sees another path)",
    url: "https://a.com/models/..%2Fadmin",
    rule: "egress.url.path_escape",
  },
  {
    name: "refuses an overlong UTF-8 dot segment the WHATWG parser leaves alone",
    url: "https://a.com/a/%c0%ae%c0%ae/b",
    rule: "egress.url.path_escape",
  },
  {
    name: "refuses a double-encoded dot segment",
    url: "https://a.com/a/%252e%252E/b",
    rule: "egress.url.path_escape",
  },
  {
    name: "refuses a double-encoded backslash",
    url: "https://a.com/a/%255c/b",
    rule: "egress.url.path_escape",
  },
  {
    name: "refuses an encoded NUL in the path",
    url: "https://a.com/x%00.gguf",
    rule: "egress.url.path_escape",
  },
  {
    name: "refuses a path segment still encoded after four rounds",
    url: "https://a.com/%252525252e",
    rule: "egress.url.path_escape",
  },
  { name: "accepts an encoded percent sign", url: "https://a.com/a/100%25.txt", rule: null },
  { name: "accepts encoded UTF-8 in the path", url: "https://a.com/caf%C3%A9", rule: null },
  { name: "accepts an encoded slash in the query", url: "https://a.com/x?p=a%2Fb", rule: null },
  { name: "accepts upper-case scheme letters", url: "HTTPS://a.com/", rule: null },
];

for (const c of cases) {
  Deno.test(`checkUrl() ${c.name}`, () => {
    const r = checkUrl(c.url, LIMITS);
    equal(r.ok ? null : r.failure.rule, c.rule);
  });
}

Deno.test("checkUrl() returns the parts both parsers agree on", () => {
  const r = checkUrl("https://Example.COM:443/a/b?x=1", {
    maxUrlLength: 8192,
    maxQueryLength: 4096,
  });
  deepEqual(r, { ok: true, url: { host: "example.com", path: "/a/b", query: "?x=1" } });
});

const destinations: {
  name: string;
  path: string;
  host: string;
  prefix: string;
  sub: boolean;
  ok: boolean;
}[] = [
  {
    name: "matches the exact host under /",
    host: "a.com",
    path: "/x",
    prefix: "/",
    sub: false,
    ok: true,
  },
  {
    name: "does not match a sub-domain of an exact entry",
    host: "b.a.com",
    path: "/x",
    prefix: "/",
    sub: false,
    ok: false,
  },
  {
    name: "matches a sub-domain where allowed",
    host: "b.a.com",
    path: "/x",
    prefix: "/",
    sub: true,
    ok: true,
  },
  {
    name: "matches the prefix itself",
    host: "a.com",
    path: "/m",
    prefix: "/m",
    sub: false,
    ok: true,
  },
  {
    name: "matches below the prefix",
    host: "a.com",
    path: "/m/x",
    prefix: "/m",
    sub: false,
    ok: true,
  },
  {
    name: "does not match a sibling sharing the prefix text",
    host: "a.com",
    path: "/mx",
    prefix: "/m",
    sub: false,
    ok: false,
  },
];
for (const d of destinations) {
  Deno.test(`matchesDestination() ${d.name}`, () => {
    equal(
      matchesDestination({ host: d.host, path: d.path, query: "" }, {
        host: "a.com",
        includeSubdomains: d.sub,
        pathPrefix: d.prefix,
      }),
      d.ok,
    );
  });
}

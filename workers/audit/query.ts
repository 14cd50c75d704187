/**
 * Queries over the segments, newest first: by time range, control, type, decision and free
 * text on the subject, paginated by sequence number. Reads only acknowledged entries.
 * @module
 */
import { type AuditEntry, AuditEntrySchema, isHeadLine, parseJsonLine } from "./offline/format.ts";
import { listSegments, scanLines, type SegmentInfo } from "./offline/segments.ts";

/** A query. */
export interface AuditFilter {
  /** Only entries with seq < before. */
  before?: number | undefined;
  /** Most entries returned. */
  limit: number;
  control?: string | undefined;
  type?: string | undefined;
  decision?: "allow" | "deny" | "ask" | undefined;
  /** Only entries at or after this time (ISO 8601). */
  from?: string | undefined;
  /** Only entries before this time (ISO 8601). */
  to?: string | undefined;
  /** Case-insensitive substring of the subject. */
  text?: string | undefined;
}

/** A page of entries. */
export interface AuditPage {
  entries: AuditEntry[];
  /** Pass as `before` for the next page; null at the end. */
  next: number | null;
  /** Entries in the log. */
  total: number;
}

const decoder = new TextDecoder();

function matches(e: AuditEntry, f: AuditFilter, times: { from: number; to: number }): boolean {
  if (f.control !== undefined && e.control !== f.control) return false;
  if (f.type !== undefined && e.type !== f.type) return false;
  if (f.decision !== undefined && e.decision !== f.decision) return false;
  if (f.from !== undefined || f.to !== undefined) {
    const ts = Date.parse(e.ts);
    if (!(ts >= times.from && ts < times.to)) return false;
  }
  if (f.text !== undefined && !e.subject.toLowerCase().includes(f.text.toLowerCase())) return false;
  return true;
}

/**
 * Runs a query.
 * @param dir `<home>/audit`
 * @param filter what to match
 * @param at `{ size }`: entries with seq below it are acknowledged (lines after may be in
 *   flight)
 */
export async function queryLog(
  dir: string,
  filter: AuditFilter,
  at: { size: number },
): Promise<AuditPage> {
  const upper = Math.min(filter.before ?? at.size, at.size);
  const times = {
    from: filter.from === undefined ? -Infinity : Date.parse(filter.from),
    to: filter.to === undefined ? Infinity : Date.parse(filter.to),
  };
  const found: AuditEntry[] = [];
  const { segments } = await listSegments(dir);
  for (let i = segments.length - 1; i >= 0 && found.length <= filter.limit; i--) {
    const seg = segments[i] as SegmentInfo;
    if (seg.firstSeq >= upper) continue;
    const lines: Uint8Array[] = [];
    await scanLines(seg.path, (line) => {
      if (isHeadLine(line)) return true;
      lines.push(line);
      return seg.firstSeq + lines.length < upper;
    });
    for (let j = lines.length - 1; j >= 0 && found.length <= filter.limit; j--) {
      const parsed = AuditEntrySchema.safeParse(parseJsonLine(decoder.decode(lines[j])));
      // A line that is not an entry is tampering; `verify` reports it, a query skips it.
      if (parsed.success && matches(parsed.data, filter, times)) found.push(parsed.data);
    }
  }
  const hasMore = found.length > filter.limit;
  const entries = found.slice(0, filter.limit);
  return {
    entries,
    next: hasMore ? (entries.at(-1)?.seq ?? null) : null,
    total: at.size,
  };
}

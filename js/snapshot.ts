/**
 * Each live output is preceded by a static HTML snapshot of its result, for readers
 * without a kernel (see rxnb/widgets/_live.py). While a live view of the widget is on
 * the page, that snapshot is redundant: one style rule per widget hides it, and it
 * comes back when the last view goes (the widget was closed). A rule, not an inline
 * style, because the kernel refreshes the snapshot output, which re-renders its nodes.
 */

const SNAPSHOT_ID = /^rxnb-snapshot-[0-9a-f]{32}$/;

const hidden = new Map<string, { views: number; style: HTMLStyleElement }>();

/** Hide the snapshot with class `snapshotId` while the returned function is not called. */
export function hideSnapshot(doc: Document, snapshotId: unknown): () => void {
  if (typeof snapshotId !== "string" || !SNAPSHOT_ID.test(snapshotId)) return () => {};
  let entry = hidden.get(snapshotId);
  if (entry === undefined) {
    const style = doc.createElement("style");
    style.dataset["rxnbSnapshot"] = snapshotId;
    // The output that holds the snapshot, where :has() is supported, else the snapshot.
    style.textContent =
      `.jp-OutputArea-child:has(.${snapshotId}) { display: none !important; }\n` +
      `.${snapshotId} { display: none !important; }`;
    doc.head.appendChild(style);
    entry = { views: 0, style };
    hidden.set(snapshotId, entry);
  }
  entry.views += 1;
  let released = false;
  return () => {
    if (released || entry === undefined) return;
    released = true;
    entry.views -= 1;
    if (entry.views === 0) {
      entry.style.remove();
      hidden.delete(snapshotId);
    }
  };
}

/**
 * The one Node API the tests use (reading widget.css, which vitest does not load as
 * text), declared here rather than adding @types/node for it.
 */
declare module "node:fs" {
  export function readFileSync(path: string, encoding: "utf8"): string;
}

/**
 * Untrusted markdown (model output, user text) to a sanitized DOM fragment.
 *
 * marked turns the text into HTML and DOMPurify keeps only plain HTML from that:
 * no script, no event handler attribute, no `javascript:` URL, no styles or forms
 * that could restyle or imitate the notebook around the widget. Links open in a new
 * tab without access to this page. Both libraries are bundled: nothing is fetched.
 *
 * Images are not loaded unless they are inline `data:` images: a remote image in model
 * output would fetch a URL the model chose (a known way for injected prompts to leak
 * data). Each becomes a link with its alt text, which the reader may follow. Nothing
 * else fetches either: no `srcset` (a browser prefers it to `src`), no video, audio,
 * `<picture>` sources, posters or backgrounds. No `class` either: the page's own
 * classes (`jp-Dialog`) would let model output dress up as JupyterLab around it.
 */
import createDOMPurify, { type Config, type DOMPurify } from "dompurify";
import { Marked } from "marked";

const marked = new Marked({ gfm: true });

const PURIFY_CONFIG: Config = {
  USE_PROFILES: { html: true },
  FORBID_TAGS: [
    "style",
    "form",
    "input",
    "button",
    "textarea",
    "select",
    "option",
    "video",
    "audio",
    "source",
    "track",
    "picture",
  ],
  FORBID_ATTR: ["style", "class", "srcset", "poster", "background"],
  // Prefix ids and names so markdown cannot shadow document properties (DOM clobbering).
  SANITIZE_NAMED_PROPS: true,
};

let purifier: DOMPurify | undefined;

/** One DOMPurify bound to this window, with our link hook; made on first use. */
function getPurifier(): DOMPurify {
  if (purifier === undefined) {
    purifier = createDOMPurify(window);
    purifier.addHook("afterSanitizeAttributes", (node) => {
      if (node.nodeName === "A" && node instanceof Element && node.hasAttribute("href")) {
        node.setAttribute("target", "_blank");
        node.setAttribute("rel", "noopener noreferrer");
      }
    });
  }
  return purifier;
}

/** The sanitized HTML of `text`, as nodes ready to insert (never reparsed from a string). */
export function renderMarkdown(text: string): DocumentFragment {
  const html = marked.parse(text, { async: false });
  const fragment = getPurifier().sanitize(html, { ...PURIFY_CONFIG, RETURN_DOM_FRAGMENT: true });
  for (const img of Array.from(fragment.querySelectorAll("img"))) {
    const src = img.getAttribute("src") ?? "";
    if (src.startsWith("data:image/")) continue;
    const link = fragment.ownerDocument.createElement("a");
    link.textContent = `[image: ${img.getAttribute("alt") || src}]`;
    link.className = "rxnb-blocked-image";
    if (src !== "") {
      link.setAttribute("href", src);
      link.setAttribute("target", "_blank");
      link.setAttribute("rel", "noopener noreferrer");
    }
    img.replaceWith(link);
  }
  return fragment;
}

// A reply's markdown as page elements. Every node is made with createElement and textContent,
// never from HTML: text from a model is never parsed as HTML, so `<img src=x onerror=...>` in a
// reply shows as those characters and runs nothing. Links open only http(s) addresses.

const INLINE =
  /(`+)([^`]+?)\1|\*\*(?=\S)(.+?)\*\*|__(?=\S)(.+?)__|(?<![\w*])\*(?=\S)([^*]+?)\*(?![\w*])|(?<![\w_])_(?=\S)([^_]+?)_(?![\w_])|\[([^\]]+)\]\((https?:\/\/[^\s)]+)\)|(https?:\/\/[^\s<>()]+[^\s<>().,;:!?'"])/g;

function el(tag, text) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  return node;
}

function link(text, href) {
  const a = el("a", text);
  a.href = href;
  a.target = "_blank";
  a.rel = "noopener noreferrer";
  return a;
}

// One line's text with its inline marks: code, strong, emphasis, links.
export function inline(text) {
  const out = document.createDocumentFragment();
  let at = 0;
  for (const m of text.matchAll(INLINE)) {
    if (m.index > at) out.append(document.createTextNode(text.slice(at, m.index)));
    if (m[2] !== undefined) out.append(el("code", m[2]));
    else if (m[3] !== undefined || m[4] !== undefined) {
      const strong = el("strong");
      strong.append(inline(m[3] ?? m[4]));
      out.append(strong);
    } else if (m[5] !== undefined || m[6] !== undefined) {
      const em = el("em");
      em.append(inline(m[5] ?? m[6]));
      out.append(em);
    } else if (m[7] !== undefined) out.append(link(m[7], m[8]));
    else out.append(link(m[9], m[9]));
    at = m.index + m[0].length;
  }
  if (at < text.length) out.append(document.createTextNode(text.slice(at)));
  return out;
}

// A whole reply: paragraphs, headings, lists, quotes and code blocks.
export function renderMarkdown(text) {
  const root = document.createDocumentFragment();
  let list = null;
  let code = null;
  for (const line of text.split("\n")) {
    if (/^\s*(```|~~~)/.test(line)) {
      if (code) {
        code = null;
      } else {
        const pre = el("pre");
        code = el("code");
        pre.append(code);
        root.append(pre);
        list = null;
      }
      continue;
    }
    if (code) {
      code.textContent += (code.textContent ? "\n" : "") + line;
      continue;
    }
    const item = line.match(/^\s*(?:([-*+•])|(\d{1,3})[.)])\s+(.*)$/);
    if (item) {
      const kind = item[1] ? "ul" : "ol";
      if (!list || list.tagName.toLowerCase() !== kind) {
        list = el(kind);
        root.append(list);
      }
      const li = el("li");
      li.append(inline(item[3]));
      list.append(li);
      continue;
    }
    list = null;
    if (!line.trim()) continue;
    const heading = line.match(/^\s*#{1,6}\s+(.*)$/);
    const quote = line.match(/^\s*>\s?(.*)$/);
    const block = el(heading ? "h4" : quote ? "blockquote" : "p");
    block.append(inline(heading ? heading[1] : quote ? quote[1] : line));
    root.append(block);
  }
  return root;
}

// Small DOM helpers shared by the timeline page and its replay player.
// el("a", {class: "x", text: "hi", href: "#"}, child...) builds an element; text is
// always set as textContent, so event data can never become markup.
window.flightrec = window.flightrec || {};
window.flightrec.el = function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
};

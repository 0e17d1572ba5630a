// Small DOM helpers and the pieces every view shows (prices, badges, product cards).
// Text from the API is always set as text, never as HTML.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") el.className = value;
    else if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const formats = new Map();

export function money(amount, currency = "INR") {
  const value = Number(amount);
  if (!Number.isFinite(value)) return String(amount ?? "");
  let format = formats.get(currency);
  if (!format) {
    try {
      format = new Intl.NumberFormat(undefined, { style: "currency", currency });
    } catch {
      format = { format: (v) => `${v.toFixed(2)} ${currency}` };
    }
    formats.set(currency, format);
  }
  return format.format(value);
}

export function etaText(hours) {
  if (hours === null || hours === undefined) return "";
  if (hours <= 24) return "Delivery within 1 day";
  const days = Math.ceil(hours / 24);
  return `Delivery in ${days} days`;
}

export function stockBadge(inStock) {
  return h(
    "span",
    { class: `badge ${inStock ? "in-stock" : "sold-out"}` },
    inStock ? "In stock" : "Out of stock",
  );
}

export function etaBadge(hours, zone) {
  if (hours === null || hours === undefined) return null;
  return h("span", { class: "badge eta" }, etaText(hours), zone ? ` to ${zone}` : "");
}

export function rating(value) {
  if (value === null || value === undefined) return h("span", { class: "rating none" }, "No ratings yet");
  const stars = Math.round(Number(value));
  return h(
    "span",
    { class: "rating", "aria-label": `Rated ${Number(value).toFixed(1)} out of 5` },
    h("span", { "aria-hidden": "true" }, "★".repeat(stars) + "☆".repeat(Math.max(0, 5 - stars))),
    h("span", { class: "rating-value", "aria-hidden": "true" }, ` ${Number(value).toFixed(1)}`),
  );
}

/** "Fashion>Men>Shirts" as the shopper reads it. */
export function categoryText(category) {
  return String(category || "").split(">").join(" › ");
}

export function productHref(productId) {
  return `#/product/${encodeURIComponent(productId)}`;
}

/**
 * Highlighted text ("Cotton <em>Shirt</em>") as text nodes and <mark>s: only the <em> markers the
 * search index adds are honoured; anything else stays text.
 */
export function highlighted(text) {
  const parts = String(text).split(/<em>(.*?)<\/em>/g);
  return parts.map((part, i) => (i % 2 ? h("mark", {}, part) : part));
}

/** A product tile: used by search results, homepage sections and related products. */
export function productCard(item, { zone, actions, headingLevel = "h3" } = {}) {
  const title = item.highlights?.title?.[0] ? highlighted(item.highlights.title[0]) : item.title;
  const listPrice = item.list_price && Number(item.list_price) > Number(item.price) ? item.list_price : null;
  return h(
    "article",
    { class: "card", "data-product-id": item.product_id },
    h(headingLevel, { class: "card-title" }, h("a", { href: productHref(item.product_id) }, title)),
    h("p", { class: "meta" }, item.brand, item.category ? ` · ${categoryText(item.category)}` : ""),
    h(
      "p",
      { class: "price" },
      money(item.price, item.currency),
      listPrice
        ? h("span", { class: "list-price" }, h("span", { class: "visually-hidden" }, " was "), money(listPrice, item.currency))
        : null,
    ),
    rating(item.rating),
    h(
      "p",
      { class: "badges" },
      item.in_stock === undefined ? null : stockBadge(item.in_stock),
      etaBadge(item.eta_hours, zone),
    ),
    actions || null,
  );
}

let statusTimer = null;

/** Tell screen readers (and, for errors, everyone) what just happened. */
export function announce(message) {
  const status = document.getElementById("status");
  status.textContent = "";
  clearTimeout(statusTimer);
  statusTimer = setTimeout(() => {
    status.textContent = message;
  }, 30);
}

let toastTimer = null;

export function toast(message, kind = "info") {
  const box = document.getElementById("toast");
  box.textContent = message;
  box.dataset.kind = kind;
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    box.hidden = true;
  }, 6000);
}

/** A message block inside a view (loading, empty, error), as a polite live region. */
export function notice(message, kind = "info") {
  return h("div", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" }, message);
}

export function focusHeading(container) {
  const heading = container.querySelector("h1");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: false });
  }
}

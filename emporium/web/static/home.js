// The front page: the sections of GET /v1/homepage (trending, new arrivals, deals, top rated per category,
// recommended for you). A server without the homepage (404) or with it not built yet (503) still gets a
// useful page: the top rated products from search.

import { api, explain, query, shopper } from "./api.js";
import { addToCart } from "./cart.js";
import { hitCard, searchHref } from "./search.js";
import { categoryText, clear, focusHeading, h, notice, productCard } from "./ui.js";

let etag = null;
let cached = null; // the last page, to answer a 304

async function homepage() {
  const headers = { Accept: "application/json" };
  if (shopper.userId) headers["X-User-Id"] = shopper.userId;
  if (etag && cached) headers["If-None-Match"] = etag;
  const response = await fetch(`/v1/homepage${query({ platform: "web" })}`, { headers, credentials: "omit" });
  if (response.status === 304 && cached) return cached;
  if (!response.ok) {
    let detail = response.statusText;
    try {
      detail = (await response.json()).detail || detail;
    } catch {
      /* not JSON */
    }
    return { unavailable: response.status, detail };
  }
  etag = response.headers.get("ETag");
  cached = await response.json();
  return cached;
}

/** Homepage items are never sold out (the server drops those), so each can go straight to the cart. */
function addButton(item) {
  return h(
    "button",
    { type: "button", class: "primary add", onclick: () => addToCart(item.sku, 1, item.title) },
    "Add to cart",
    h("span", { class: "visually-hidden" }, `: ${item.title}`),
  );
}

function section(part, index) {
  const id = `section-${index}`;
  const title = part.category && !String(part.title || "").includes(part.category) ? `${part.title} · ${categoryText(part.category)}` : part.title;
  return h(
    "section",
    { class: "home-section", "aria-labelledby": id, "data-section": part.id },
    h("h2", { id }, title || part.id),
    h(
      "ul",
      { class: "cards scroller" },
      (part.items || []).map((item) => h("li", {}, productCard(item, { zone: shopper.zone, actions: addButton(item) }))),
    ),
  );
}

async function fallback(reason) {
  const parts = [notice(reason)];
  try {
    const answer = await api(`/v1/search${query({ sort: "rating", size: 12, deliver_to: shopper.zone })}`);
    parts.push(
      h(
        "section",
        { class: "home-section", "aria-labelledby": "top-rated", "data-section": "fallback" },
        h("h2", { id: "top-rated" }, "Top rated"),
        h("ul", { class: "cards scroller" }, answer.hits.map((hit) => hitCard(hit, shopper.zone))),
        h("p", {}, h("a", { href: searchHref({ sort: "rating", brand: [], in_stock: true }) }, "See all top rated products")),
      ),
    );
  } catch (error) {
    parts.push(notice(explain(error), "error"));
  }
  return parts;
}

export async function renderHome(view) {
  clear(view, h("h1", {}, "Welcome to Emporium"), notice("Loading…"));
  focusHeading(view);
  const hash = location.hash;
  let page;
  try {
    page = await homepage();
  } catch {
    page = { unavailable: 0, detail: "unreachable" };
  }
  if (location.hash !== hash) return; // the shopper moved on while it loaded
  const heading = h("h1", {}, "Welcome to Emporium");
  if (page.unavailable !== undefined) {
    const reason =
      page.unavailable === 404
        ? "The personalised homepage is not available on this server yet. Here is what shoppers rate best."
        : "The homepage is being prepared; here is what shoppers rate best meanwhile.";
    const parts = await fallback(reason);
    if (location.hash !== hash) return;
    clear(view, heading, ...parts);
    view.dataset.homepage = "fallback";
    return;
  }
  const sections = (page.sections || []).filter((part) => (part.items || []).length);
  const empty = sections.length ? null : await fallback("Nothing to show on the homepage yet.");
  if (location.hash !== hash) return;
  clear(
    view,
    heading,
    page.personalised ? h("p", { class: "hint" }, "Picked for you.") : null,
    sections.length ? sections.map(section) : empty,
  );
  view.dataset.homepage = sections.length ? "sections" : "fallback";
}

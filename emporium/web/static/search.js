// Search: the results view with facets and filters (GET /v1/search) and the search box's autocomplete
// (GET /v1/suggest). The filters live in the URL (#/search?q=..&brand=..), so back, forward and links work.

import { api, explain, query, shopper } from "./api.js";
import { addToCart } from "./cart.js";
import { announce, categoryText, clear, h, money, notice, productCard } from "./ui.js";

const PAGE_SIZE = 24;
const RATINGS = [4, 3, 2];

/** The search state from the hash's query string. */
export function readState(params) {
  return {
    q: params.get("q") || "",
    category: params.get("category") || "",
    brand: params.getAll("brand"),
    price_min: params.get("price_min") || "",
    price_max: params.get("price_max") || "",
    rating_min: params.get("rating_min") || "",
    in_stock: params.get("in_stock") !== "false",
    sort: params.get("sort") || "relevance",
  };
}

export function searchHref(state) {
  const params = { ...state, in_stock: state.in_stock === false ? "false" : "" };
  if (params.sort === "relevance") params.sort = "";
  return `#/search${query(params)}`;
}

function go(state) {
  location.hash = searchHref(state);
}

function facetGroup(title, id, body) {
  return h("fieldset", { class: "facet", id }, h("legend", {}, title), body);
}

function categoryFacet(state, buckets) {
  const items = [];
  if (state.category) {
    const parent = state.category.split(">").slice(0, -1).join(">");
    items.push(
      h("li", {}, h("a", { href: searchHref({ ...state, category: parent }), class: "up" }, `‹ ${parent ? categoryText(parent) : "All categories"}`)),
      h("li", {}, h("strong", { "aria-current": "true" }, categoryText(state.category))),
    );
  }
  for (const bucket of buckets || []) {
    if (bucket.value === state.category) continue;
    const name = bucket.value.split(">").pop();
    items.push(
      h(
        "li",
        {},
        h("a", { href: searchHref({ ...state, category: bucket.value }) }, name, h("span", { class: "count" }, ` (${bucket.count})`)),
      ),
    );
  }
  return facetGroup("Category", "facet-category", items.length ? h("ul", { class: "plain" }, items) : h("p", { class: "hint" }, "—"));
}

function brandFacet(state, buckets) {
  const counts = new Map((buckets || []).map((b) => [b.value, b.count]));
  for (const brand of state.brand) if (!counts.has(brand)) counts.set(brand, 0);
  const boxes = [...counts.entries()].map(([brand, count]) => {
    // stable across renders, so the focus comes back to the box the shopper just ticked
    const id = `brand-${Array.from(brand, (c) => c.codePointAt(0).toString(16)).join("-")}`;
    const checked = state.brand.includes(brand);
    return h(
      "li",
      {},
      h("input", {
        type: "checkbox",
        id,
        checked,
        "data-brand": brand,
        onchange: () => {
          const brands = checked ? state.brand.filter((b) => b !== brand) : [...state.brand, brand];
          go({ ...state, brand: brands });
        },
      }),
      h("label", { for: id }, brand, h("span", { class: "count" }, ` (${count})`)),
    );
  });
  return facetGroup("Brand", "facet-brand", boxes.length ? h("ul", { class: "plain" }, boxes) : h("p", { class: "hint" }, "—"));
}

function priceFacet(state, buckets) {
  const links = (buckets || [])
    .filter((b) => b.count > 0)
    .map((bucket) => {
      const [low, high] = bucket.value.endsWith("+") ? [bucket.value.slice(0, -1), ""] : bucket.value.split("-");
      const current = state.price_min === low && state.price_max === high;
      const label = high ? `${money(low)} – ${money(high)}` : `${money(low)} and more`;
      return h(
        "li",
        {},
        h("a", { href: searchHref({ ...state, price_min: low, price_max: high }), "aria-current": current ? "true" : null }, label, h("span", { class: "count" }, ` (${bucket.count})`)),
      );
    });
  const min = h("input", { id: "price-min", type: "number", min: "0", step: "any", inputmode: "decimal", value: state.price_min, placeholder: "Min" });
  const max = h("input", { id: "price-max", type: "number", min: "0", step: "any", inputmode: "decimal", value: state.price_max, placeholder: "Max" });
  const custom = h(
    "form",
    {
      class: "price-range",
      onsubmit: (event) => {
        event.preventDefault();
        go({ ...state, price_min: min.value, price_max: max.value });
      },
    },
    h("label", { for: "price-min", class: "visually-hidden" }, "Minimum price"),
    min,
    h("span", { "aria-hidden": "true" }, "–"),
    h("label", { for: "price-max", class: "visually-hidden" }, "Maximum price"),
    max,
    h("button", { type: "submit", class: "secondary" }, "Go"),
  );
  return facetGroup("Price", "facet-price", [links.length ? h("ul", { class: "plain" }, links) : null, custom]);
}

function ratingFacet(state) {
  const select = h(
    "select",
    { id: "rating-min", onchange: (event) => go({ ...state, rating_min: event.target.value }) },
    h("option", { value: "" }, "Any rating"),
    RATINGS.map((r) => h("option", { value: String(r), selected: state.rating_min === String(r) }, `${r}★ and up`)),
  );
  return facetGroup("Rating", "facet-rating", [h("label", { for: "rating-min", class: "visually-hidden" }, "Minimum rating"), select]);
}

function stockFacet(state) {
  return facetGroup(
    "Availability",
    "facet-stock",
    h(
      "label",
      { class: "check" },
      h("input", { id: "in-stock", type: "checkbox", checked: state.in_stock, onchange: (e) => go({ ...state, in_stock: e.target.checked }) }),
      " In stock only",
    ),
  );
}

function filtersPanel(state, facets) {
  const active = Boolean(state.category || state.brand.length || state.price_min || state.price_max || state.rating_min || !state.in_stock);
  const panel = h(
    "details",
    { class: "filters", open: true },
    h("summary", {}, "Filters", active ? h("span", { class: "badge" }, "on") : null),
    h(
      "div",
      { class: "filter-groups" },
      categoryFacet(state, facets.category),
      brandFacet(state, facets.brand),
      priceFacet(state, facets.price),
      ratingFacet(state),
      stockFacet(state),
      active ? h("p", {}, h("a", { href: searchHref({ q: state.q, brand: [], in_stock: true }) }, "Clear all filters")) : null,
    ),
  );
  return h("aside", { class: "sidebar", "aria-label": "Filters" }, panel);
}

function sortControl(state) {
  const options = [
    ["relevance", "Best match"],
    ["price_asc", "Price: low to high"],
    ["price_desc", "Price: high to low"],
    ["rating", "Top rated"],
    ["newest", "Newest"],
  ];
  return h(
    "label",
    { class: "sort", for: "sort" },
    "Sort by ",
    h(
      "select",
      { id: "sort", onchange: (e) => go({ ...state, sort: e.target.value }) },
      options.map(([value, label]) => h("option", { value, selected: state.sort === value }, label)),
    ),
  );
}

export function hitCard(hit, zone) {
  const add = h(
    "button",
    {
      type: "button",
      class: "primary add",
      disabled: hit.in_stock ? null : true,
      onclick: () => addToCart(hit.sku, 1, hit.title),
    },
    "Add to cart",
    h("span", { class: "visually-hidden" }, `: ${hit.title}`),
  );
  return h("li", {}, productCard(hit, { zone, actions: add, headingLevel: "h2" }));
}

function request(state, cursor) {
  return query({
    q: state.q,
    category: state.category,
    brand: state.brand,
    price_min: state.price_min,
    price_max: state.price_max,
    rating_min: state.rating_min,
    in_stock: state.in_stock ? "" : "false",
    sort: state.sort === "relevance" ? "" : state.sort,
    deliver_to: shopper.zone,
    size: PAGE_SIZE,
    cursor,
  });
}

/** Render the results view for `state` into `view`. */
export async function renderSearch(view, state) {
  const focused = document.activeElement?.id;
  const filtersOpen = view.querySelector("details.filters")?.open; // a phone keeps them as the shopper left them
  const heading = state.q ? `Results for “${state.q}”` : state.category ? categoryText(state.category) : "All products";
  const hash = location.hash;
  let answer;
  try {
    answer = await api(`/v1/search${request(state)}`);
  } catch (error) {
    if (location.hash === hash) clear(view, h("h1", {}, heading), notice(explain(error), "error"));
    return;
  }
  if (location.hash !== hash) return; // the shopper moved on (another filter) while this one loaded
  const list = h("ul", { class: "results", "aria-label": "Search results" }, answer.hits.map((hit) => hitCard(hit, shopper.zone)));
  const more = h("div", { class: "more" });
  const showMore = (cursor) => {
    clear(
      more,
      cursor
        ? h(
            "button",
            {
              type: "button",
              class: "secondary",
              onclick: async () => {
                try {
                  const next = await api(`/v1/search${request(state, cursor)}`);
                  list.append(...next.hits.map((hit) => hitCard(hit, shopper.zone)));
                  announce(`${next.hits.length} more results loaded.`);
                  showMore(next.next_cursor);
                } catch (error) {
                  more.prepend(notice(explain(error), "error"));
                }
              },
            },
            "Show more results",
          )
        : null,
    );
  };
  showMore(answer.next_cursor);
  const summary = `${answer.total} ${answer.total === 1 ? "product" : "products"}${shopper.zone ? ` delivering to ${shopper.zone}` : ""}`;
  clear(
    view,
    h(
      "div",
      { class: "search-layout" },
      filtersPanel(state, answer.facets || {}),
      h(
        "section",
        { class: "results-area", "aria-labelledby": "results-heading" },
        h("div", { class: "results-head" }, h("h1", { id: "results-heading" }, heading), h("p", { class: "summary" }, summary), sortControl(state)),
        answer.hits.length ? list : notice(state.in_stock ? "Nothing found in stock. Try other words, or include items out of stock." : "Nothing found. Try other words or fewer filters."),
        more,
      ),
    ),
  );
  if (window.matchMedia("(max-width: 720px)").matches) view.querySelector("details.filters").open = Boolean(filtersOpen);
  const again = focused && view.querySelector(`#${CSS.escape(focused)}`);
  if (again) again.focus();
  announce(`${summary}.`);
}

/** The search box: typo-tolerant completions as an ARIA combobox (arrows, Enter, Escape). */
export function autocomplete(input, listbox, onPick) {
  let active = -1;
  let items = [];
  let timer = null;
  let inflight = null;

  const close = () => {
    clearTimeout(timer); // a completion still on its way must not reopen the list after a search
    inflight?.abort();
    listbox.hidden = true;
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
    active = -1;
  };
  const highlight = (index) => {
    active = index;
    listbox.querySelectorAll("[role=option]").forEach((option, i) => option.setAttribute("aria-selected", String(i === index)));
    if (index >= 0) input.setAttribute("aria-activedescendant", `suggestion-${index}`);
    else input.removeAttribute("aria-activedescendant");
  };
  const show = (suggestions) => {
    items = suggestions;
    clear(
      listbox,
      suggestions.map((text, i) =>
        h(
          "li",
          {
            id: `suggestion-${i}`,
            role: "option",
            "aria-selected": "false",
            onmousedown: (event) => event.preventDefault(), // keep the focus in the box
            onclick: () => {
              close();
              onPick(text);
            },
          },
          text,
        ),
      ),
    );
    if (!suggestions.length) return close();
    listbox.hidden = false;
    input.setAttribute("aria-expanded", "true");
    highlight(-1);
    announce(`${suggestions.length} suggestions; use the arrow keys to choose.`);
  };
  const fetchSuggestions = async () => {
    const text = input.value.trim();
    if (text.length < 2) return close();
    inflight?.abort();
    inflight = new AbortController();
    try {
      const answer = await api(`/v1/suggest${query({ q: text, limit: 8 })}`, { signal: inflight.signal });
      if (input.value.trim() === text && document.activeElement === input) show(answer.suggestions || []);
    } catch {
      /* autocomplete is a nicety: a failure leaves the box as it is */
    }
  };

  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(fetchSuggestions, 150);
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown" && items.length) {
      event.preventDefault();
      if (listbox.hidden) {
        listbox.hidden = false;
        input.setAttribute("aria-expanded", "true");
      }
      highlight((active + 1) % items.length);
    } else if (event.key === "ArrowUp" && items.length && !listbox.hidden) {
      event.preventDefault();
      highlight(active <= 0 ? items.length - 1 : active - 1);
    } else if (event.key === "Enter" && active >= 0 && !listbox.hidden) {
      event.preventDefault();
      const text = items[active];
      close();
      onPick(text);
    } else if (event.key === "Escape") {
      close();
    }
  });
  input.addEventListener("blur", () => setTimeout(close, 100));
  return { close };
}

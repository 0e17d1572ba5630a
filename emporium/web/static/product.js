// One product (GET /v1/products/{id}) with its live stock and delivery ETA, add to cart, and related
// products (GET /v1/products/{id}/related) when the analytics have computed some.

import { api, explain, query, shopper } from "./api.js";
import { addToCart } from "./cart.js";
import { searchHref } from "./search.js";
import { clear, etaText, focusHeading, h, money, notice, productCard, rating, stockBadge } from "./ui.js";

const RELATED = 4;

function breadcrumb(path) {
  const crumbs = path.map((name, i) => {
    const category = path.slice(0, i + 1).join(">");
    return h("li", {}, h("a", { href: searchHref({ category, brand: [], in_stock: true }) }, name));
  });
  return h("nav", { class: "breadcrumb", "aria-label": "Breadcrumb" }, h("ol", {}, h("li", {}, h("a", { href: "#/" }, "Home")), crumbs));
}

function delivery(product) {
  if (!product.in_stock) return h("p", { class: "delivery" }, "Not available to order right now.");
  if (!shopper.zone) {
    return h("p", { class: "delivery" }, "Choose where to deliver (top of the page) to see when it arrives.");
  }
  if (product.eta_hours === null || product.eta_hours === undefined) {
    return h("p", { class: "delivery warn" }, `Does not ship to ${shopper.zone} from the warehouses that hold it.`);
  }
  return h("p", { class: "delivery" }, h("span", { class: "badge eta" }, `${etaText(product.eta_hours)} to ${shopper.zone}`));
}

function buyBox(product) {
  const quantity = h("input", { id: "quantity", type: "number", min: "1", max: "10", value: "1", inputmode: "numeric" });
  return h(
    "form",
    {
      class: "buy",
      onsubmit: (event) => {
        event.preventDefault();
        const n = Math.max(1, Math.min(10, Number.parseInt(quantity.value, 10) || 1));
        addToCart(product.sku, n, product.title);
      },
    },
    h("label", { for: "quantity" }, "Quantity"),
    quantity,
    h("button", { type: "submit", class: "primary", id: "add-to-cart", disabled: product.in_stock ? null : true }, "Add to cart"),
  );
}

async function related(productId, zone) {
  const section = h("section", { class: "related", "aria-labelledby": "related-title", hidden: true });
  try {
    const answer = await api(`/v1/products/${encodeURIComponent(productId)}/related${query({ limit: RELATED })}`);
    const ids = (answer?.product_ids || []).slice(0, RELATED);
    const products = await Promise.all(
      ids.map((id) => api(`/v1/products/${encodeURIComponent(id)}${query({ deliver_to: zone })}`).catch(() => null)),
    );
    const found = products.filter(Boolean);
    if (found.length) {
      clear(section, h("h2", { id: "related-title" }, "Bought together"), h("ul", { class: "cards" }, found.map((p) => h("li", {}, productCard(p, { zone })))));
      section.hidden = false;
    }
  } catch {
    /* no related lists on this server yet: the section stays hidden */
  }
  return section;
}

export async function renderProduct(view, productId) {
  clear(view, notice("Loading the product…"));
  const zone = shopper.zone;
  const hash = location.hash;
  let product;
  try {
    product = await api(`/v1/products/${encodeURIComponent(productId)}${query({ deliver_to: zone })}`);
  } catch (error) {
    if (location.hash !== hash) return;
    const message = error.status === 404 ? "This product does not exist or is no longer sold." : explain(error);
    clear(view, h("h1", {}, "Product"), notice(message, "error"), h("p", {}, h("a", { href: "#/" }, "Back to the shop")));
    focusHeading(view);
    return;
  }
  if (location.hash !== hash) return; // the shopper moved on while it loaded
  document.title = `${product.title} · Emporium`;
  clear(
    view,
    h(
      "article",
      { class: "product", "data-product-id": product.product_id },
      breadcrumb(product.category_path || []),
      h("h1", {}, product.title),
      h("p", { class: "meta" }, "by ", h("a", { href: searchHref({ brand: [product.brand], in_stock: true }) }, product.brand)),
      rating(product.rating),
      h("p", { class: "price big" }, money(product.price, product.currency)),
      h("p", { class: "badges" }, stockBadge(product.in_stock)),
      delivery(product),
      buyBox(product),
      h("h2", {}, "About this item"),
      h("p", { class: "description" }, product.description || "No description."),
      h(
        "dl",
        { class: "facts" },
        h("dt", {}, "Sold by"),
        h("dd", {}, product.supplier_id),
        h("dt", {}, "SKU"),
        h("dd", { class: "sku" }, product.sku),
        h("dt", {}, "Ships from"),
        h("dd", {}, product.warehouses?.length ? product.warehouses.join(", ") : "—"),
      ),
    ),
  );
  focusHeading(view);
  const also = await related(product.product_id, zone);
  if (location.hash === hash) view.append(also);
}

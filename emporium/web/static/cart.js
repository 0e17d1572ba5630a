// Cart, checkout and orders: PUT/DELETE /v1/carts/{customer}/items/{sku}, POST /v1/checkouts (+ confirm,
// release), GET /v1/customers/{customer}/orders. Every call sends the storefront key the shopper pasted.

import { ApiError, NoKey, api, explain, query, randomId, shopper } from "./api.js";
import { announce, clear, focusHeading, h, money, notice, productHref, toast } from "./ui.js";

const PENDING_CHECKOUT = "emporium.checkout-key";
let cart = null; // the last cart the server answered

const cartPath = (customerId = shopper.customerId) => `/v1/carts/${encodeURIComponent(customerId)}`;

function showCount() {
  const count = (cart?.items || []).reduce((sum, item) => sum + Number(item.quantity || 0), 0);
  document.getElementById("cart-count").textContent = String(count);
}

function remember(answer) {
  cart = answer && Array.isArray(answer.items) ? answer : { items: [], total: "0" };
  showCount();
  return cart;
}

export async function loadCart() {
  return remember(await api(cartPath(), { auth: true }));
}

/** Fill the header's count when a key is there; a page without carts stays quiet. */
export async function refreshCount() {
  if (!shopper.key) return;
  try {
    await loadCart();
  } catch {
    /* no carts on this server, or the key is refused: the cart view says so */
  }
}

export async function addToCart(sku, quantity = 1, title = sku) {
  try {
    if (!cart) await loadCart();
    const line = cart.items.find((item) => item.sku === sku);
    const wanted = (line ? Number(line.quantity) : 0) + quantity;
    remember(
      await api(`${cartPath()}/items/${encodeURIComponent(sku)}`, {
        method: "PUT",
        auth: true,
        body: { quantity: wanted },
      }),
    );
    toast(`Added to your cart: ${title}`, "ok");
    announce(`${title} added to your cart. ${wanted} in the cart.`);
    return true;
  } catch (error) {
    complain(error, "carts");
    return false;
  }
}

function complain(error, what) {
  if (error instanceof NoKey || error.status === 401 || error.status === 403) {
    toast(explain(error), "error");
    document.getElementById("settings-button").click();
  } else if (error.routeMissing) {
    toast(`This server does not offer ${what} yet.`, "error");
  } else {
    toast(explain(error), "error");
  }
}

/** Move the guest's cart into the shopper's (POST /v1/carts/{user}/merge, idempotent). */
export async function mergeGuestCart(userId) {
  if (!shopper.key) return;
  try {
    remember(await api(`${cartPath(userId)}/merge`, { method: "POST", auth: true, body: { from: shopper.sessionId } }));
  } catch (error) {
    if (!error.routeMissing) toast(explain(error), "error");
  }
}

function cartLine(item, rerender) {
  const title = item.title || item.sku;
  const quantityId = `qty-${item.sku.replace(/[^A-Za-z0-9_-]/g, "_")}`;
  const setQuantity = async (quantity) => {
    const path = `${cartPath()}/items/${encodeURIComponent(item.sku)}`;
    try {
      remember(
        quantity > 0
          ? await api(path, { method: "PUT", auth: true, body: { quantity } })
          : await api(path, { method: "DELETE", auth: true }),
      );
      announce(quantity > 0 ? `${title}: quantity ${quantity}.` : `${title} removed from your cart.`);
      rerender();
    } catch (error) {
      complain(error, "carts");
    }
  };
  return h(
    "li",
    { class: "cart-line" },
    h("a", { class: "line-title", href: productHref(item.product_id) }, title),
    h(
      "p",
      { class: "meta" },
      item.unit_price === null || item.unit_price === undefined
        ? "No longer sold"
        : `${money(item.unit_price, cart.currency)} each`,
      item.price_changed && item.previous_price
        ? h("span", { class: "badge warn" }, `Price changed (was ${money(item.previous_price, cart.currency)})`)
        : null,
      item.available === false ? h("span", { class: "badge sold-out" }, "Not available in this quantity") : null,
    ),
    h(
      "div",
      { class: "line-controls" },
      h("label", { for: quantityId }, "Quantity"),
      h("input", {
        id: quantityId,
        type: "number",
        min: "1",
        max: "99",
        value: String(item.quantity),
        inputmode: "numeric",
        onchange: (event) => {
          const quantity = Number.parseInt(event.target.value, 10);
          if (quantity >= 1) setQuantity(quantity);
        },
      }),
      h("button", { type: "button", class: "secondary", onclick: () => setQuantity(0) }, "Remove", h("span", { class: "visually-hidden" }, ` ${title}`)),
    ),
  );
}

export async function renderCart(view) {
  clear(view, h("h1", {}, "Your cart"), notice("Loading your cart…"));
  focusHeading(view);
  const rerender = () => renderCartBody(view);
  if (!shopper.key) {
    clear(view, h("h1", {}, "Your cart"), keyNotice());
    focusHeading(view);
    return;
  }
  try {
    await loadCart();
  } catch (error) {
    clear(view, h("h1", {}, "Your cart"), notice(error.routeMissing ? "This server does not offer carts yet." : explain(error), "error"));
    focusHeading(view);
    return;
  }
  rerender();
  focusHeading(view);
}

function keyNotice() {
  return h(
    "div",
    { class: "notice info" },
    "Carts are kept by a storefront. ",
    h("button", { type: "button", class: "link-button", onclick: () => document.getElementById("settings-button").click() }, "Paste a storefront key"),
    " to use yours.",
  );
}

function renderCartBody(view) {
  const items = cart.items || [];
  const body = [h("h1", {}, "Your cart")];
  if (!items.length) {
    body.push(notice("Your cart is empty."), h("p", {}, h("a", { href: "#/" }, "Continue shopping")));
    clear(view, body);
    return;
  }
  const checkoutArea = h("section", { class: "checkout", "aria-labelledby": "checkout-title" });
  body.push(
    h("ul", { class: "cart-lines", "aria-label": "Cart lines" }, items.map((item) => cartLine(item, () => renderCartBody(view)))),
    h("p", { class: "total" }, "Total: ", h("strong", {}, money(cart.total, cart.currency))),
    checkoutArea,
  );
  clear(view, body);
  checkoutStart(checkoutArea, view);
}

function checkoutStart(area, view, message = null) {
  clear(
    area,
    h("h2", { id: "checkout-title" }, "Checkout"),
    message,
    h("button", { type: "button", class: "primary", onclick: () => startCheckout(area, view, false) }, "Check out"),
  );
}

/** One Idempotency-Key per attempt, kept until it answers: a retry after a lost answer is the same checkout. */
function attemptKey(fresh) {
  let key = sessionStorage.getItem(PENDING_CHECKOUT);
  if (fresh || !key) {
    key = `page-${randomId()}`;
    sessionStorage.setItem(PENDING_CHECKOUT, key);
  }
  return key;
}

async function startCheckout(area, view, acceptPrices) {
  clear(area, h("h2", { id: "checkout-title" }, "Checkout"), notice("Holding your items…"));
  let checkout;
  try {
    checkout = await api("/v1/checkouts", {
      method: "POST",
      auth: true,
      headers: { "Idempotency-Key": attemptKey(acceptPrices) },
      body: { customer_id: shopper.customerId, accept_price_changes: acceptPrices },
    });
  } catch (error) {
    sessionStorage.removeItem(PENDING_CHECKOUT);
    checkoutRefused(area, view, error);
    return;
  }
  sessionStorage.removeItem(PENDING_CHECKOUT);
  showCheckout(area, view, checkout);
}

function checkoutRefused(area, view, error) {
  if (error.routeMissing) {
    checkoutStart(area, view, notice("This server does not offer checkout yet.", "error"));
    return;
  }
  const lines = error.extra?.lines;
  if (error.status === 409 && Array.isArray(lines) && lines.length) {
    clear(
      area,
      h("h2", { id: "checkout-title" }, "Checkout"),
      notice("Some prices changed since you added these items:", "error"),
      h(
        "ul",
        {},
        lines.map((line) =>
          h(
            "li",
            {},
            `${line.title || line.sku}: `,
            line.now === null ? "no longer sold" : `now ${money(line.now, cart?.currency)}`,
            line.was ? ` (was ${money(line.was, cart?.currency)})` : "",
          ),
        ),
      ),
      h("button", { type: "button", class: "primary", onclick: () => startCheckout(area, view, true) }, "Accept the new prices and check out"),
    );
    return;
  }
  let message = explain(error);
  if (error.status === 409 && error.extra?.sku) {
    message = `Not enough stock of ${error.extra.sku} (available ${error.extra.available ?? 0}); nothing was held.`;
  }
  checkoutStart(area, view, notice(message, "error"));
  if (error.status === 401 || error.status === 403 || error instanceof NoKey) complain(error, "checkout");
}

function showCheckout(area, view, checkout) {
  const expires = checkout.expires_at ? new Date(checkout.expires_at) : null;
  clear(
    area,
    h("h2", { id: "checkout-title" }, "Checkout"),
    h(
      "p",
      { class: "notice ok", role: "status" },
      `Your ${checkout.lines.length === 1 ? "item is" : "items are"} held`,
      expires ? ` until ${expires.toLocaleTimeString()}` : "",
      ".",
    ),
    h(
      "table",
      { class: "lines" },
      h("caption", { class: "visually-hidden" }, "Checkout lines"),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Item"), h("th", { scope: "col" }, "Qty"), h("th", { scope: "col" }, "Price"))),
      h(
        "tbody",
        {},
        checkout.lines.map((line) =>
          h("tr", {}, h("td", {}, line.title || line.sku), h("td", {}, String(line.quantity)), h("td", {}, money(line.unit_price, checkout.currency))),
        ),
      ),
    ),
    h("p", { class: "total" }, "To pay: ", h("strong", {}, money(checkout.total, checkout.currency))),
    h(
      "div",
      { class: "actions" },
      h("button", { type: "button", class: "secondary", onclick: () => cancelCheckout(area, view, checkout) }, "Cancel"),
      h("button", { type: "button", class: "primary", id: "place-order", onclick: () => confirmCheckout(area, view, checkout) }, "Place order"),
    ),
  );
  area.querySelector("#place-order").focus();
  announce(`Items held. Total ${money(checkout.total, checkout.currency)}. Place the order to buy them.`);
}

async function confirmCheckout(area, view, checkout) {
  area.querySelectorAll("button").forEach((button) => {
    button.disabled = true;
  });
  try {
    const order = await api(`/v1/checkouts/${encodeURIComponent(checkout.checkout_id)}/confirm`, {
      method: "POST",
      auth: true,
      body: { payment_reference: `page-${randomId().slice(0, 12)}` }, // payment itself happens elsewhere
    });
    cart = null;
    await refreshCount();
    clear(
      view,
      h("h1", {}, "Thank you!"),
      h("p", { class: "notice ok", role: "status" }, "Your order ", h("strong", { class: "order-id" }, order.order_id), " is placed."),
      h("p", {}, "Total paid: ", money(order.total, order.currency)),
      h("p", {}, h("a", { href: "#/orders" }, "See your orders"), " · ", h("a", { href: "#/" }, "Continue shopping")),
    );
    focusHeading(view);
  } catch (error) {
    showCheckout(area, view, checkout);
    area.prepend(notice(explain(error), "error"));
  }
}

async function cancelCheckout(area, view, checkout) {
  try {
    await api(`/v1/checkouts/${encodeURIComponent(checkout.checkout_id)}`, { method: "DELETE", auth: true });
    announce("Checkout cancelled; your items are released.");
  } catch (error) {
    toast(explain(error), "error");
  }
  checkoutStart(area, view);
}

export async function renderOrders(view) {
  clear(view, h("h1", {}, "Your orders"), notice("Loading your orders…"));
  focusHeading(view);
  if (!shopper.key) {
    clear(view, h("h1", {}, "Your orders"), keyNotice());
    return;
  }
  let page;
  try {
    page = await api(`/v1/customers/${encodeURIComponent(shopper.customerId)}/orders${query({ limit: 20 })}`, { auth: true });
  } catch (error) {
    const message = error.routeMissing ? "This server does not offer order history yet." : explain(error);
    clear(view, h("h1", {}, "Your orders"), notice(message, error instanceof ApiError ? "error" : "info"));
    return;
  }
  const orders = page?.orders || [];
  clear(
    view,
    h("h1", {}, "Your orders"),
    orders.length
      ? h(
          "ul",
          { class: "orders" },
          orders.map((order) =>
            h(
              "li",
              { class: "order" },
              h("h2", {}, `Order ${order.order_id}`),
              h("p", { class: "meta" }, order.placed_at ? new Date(order.placed_at).toLocaleString() : "", ` · ${money(order.total, order.currency)}`),
              h("ul", {}, (order.lines || []).map((line) => h("li", {}, `${line.quantity} × ${line.title || line.sku}`))),
            ),
          ),
        )
      : notice("No orders yet."),
  );
}

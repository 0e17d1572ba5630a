// The storefront page's entry point: the hash router, the header (search box, delivery zone, cart count)
// and the storefront-key dialog. Views: #/ (homepage), #/search?.., #/product/<id>, #/cart, #/orders.

import { api, query, shopper } from "./api.js";
import { mergeGuestCart, refreshCount, renderCart, renderOrders } from "./cart.js";
import { renderHome } from "./home.js";
import { renderProduct } from "./product.js";
import { autocomplete, readState, renderSearch, searchHref } from "./search.js";
import { clear, h, notice, toast } from "./ui.js";

const view = document.getElementById("view");
const input = document.getElementById("q");
let rendering = 0;

async function route() {
  const token = ++rendering;
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, search = ""] = hash.split("?");
  const params = new URLSearchParams(search);
  document.title = "Emporium storefront";
  document.getElementById("toast").hidden = true; // a message belongs to the view it was about
  view.setAttribute("aria-busy", "true");
  delete view.dataset.homepage;
  try {
    if (path === "/search") {
      input.value = params.get("q") || "";
      await renderSearch(view, readState(params));
    } else if (path.startsWith("/product/")) {
      await renderProduct(view, decodeURIComponent(path.slice("/product/".length)));
    } else if (path === "/cart") {
      await renderCart(view);
    } else if (path === "/orders") {
      await renderOrders(view);
    } else {
      input.value = "";
      await renderHome(view);
    }
  } catch (error) {
    if (token === rendering) clear(view, h("h1", {}, "Something went wrong"), notice(String(error), "error"));
  } finally {
    if (token === rendering) {
      view.removeAttribute("aria-busy");
      view.dataset.rendered = hash; // which route the view shows now (tests wait on it)
    }
  }
}

function searchFor(text) {
  input.value = text;
  location.hash = searchHref({ q: text.trim(), brand: [], in_stock: true });
}

/** The delivery zones: the API has no list route, but a search for an unknown zone answers them (400). */
async function loadZones() {
  const select = document.getElementById("deliver-to");
  let zones = [];
  try {
    await api(`/v1/search${query({ deliver_to: "?", size: 1 })}`);
  } catch (error) {
    zones = Array.isArray(error.extra?.zones) ? error.extra.zones : [];
  }
  for (const zone of zones) select.append(h("option", { value: zone, selected: zone === shopper.zone }, zone));
  if (shopper.zone && !zones.includes(shopper.zone)) shopper.setZone("");
  select.addEventListener("change", () => {
    shopper.setZone(select.value);
    route();
  });
}

function settingsDialog() {
  const dialog = document.getElementById("settings");
  const form = document.getElementById("settings-form");
  const key = document.getElementById("storefront-key");
  const remember = document.getElementById("remember-key");
  const shopperId = document.getElementById("shopper-id");
  const button = document.getElementById("settings-button");
  const showState = () => {
    button.textContent = shopper.key ? "Storefront key ✓" : "Storefront key";
    button.setAttribute("aria-label", shopper.key ? "Storefront key (set)" : "Storefront key (not set)");
  };
  button.addEventListener("click", () => {
    key.value = shopper.key;
    remember.checked = shopper.remembered;
    shopperId.value = shopper.userId;
    document.getElementById("guest-id").textContent = `As a guest your cart is kept as ${shopper.sessionId}.`;
    dialog.showModal();
  });
  document.getElementById("forget-key").addEventListener("click", () => {
    shopper.setKey("", false);
    key.value = "";
    showState();
    toast("The storefront key is forgotten on this device.");
  });
  form.addEventListener("submit", async (event) => {
    if (event.submitter?.value !== "save") return;
    if (!shopperId.checkValidity()) {
      event.preventDefault();
      shopperId.reportValidity();
      return;
    }
    shopper.setKey(key.value.trim(), remember.checked);
    const before = shopper.userId;
    const after = shopperId.value.trim();
    shopper.setUserId(after);
    showState();
    if (after && after !== before) await mergeGuestCart(after);
    await refreshCount();
    route();
  });
  showState();
}

function start() {
  document.getElementById("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    combo.close();
    searchFor(input.value);
  });
  const combo = autocomplete(input, document.getElementById("suggestions"), searchFor);
  settingsDialog();
  window.addEventListener("hashchange", route);
  loadZones().finally(route);
  refreshCount();
}

start();

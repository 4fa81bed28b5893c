// The search region: a box the user draws on the query image (pointer: mouse, pen or touch),
// moves (drag inside), resizes (corner handles) or edits with the keyboard. The box is kept in
// pixels of the natural image (what the server crops; Chromium applies EXIF orientation, so the
// natural size is the upright size) and only drawn in displayed pixels.

/** The smallest side the server searches (lookalike.region.MIN_BOX_SIDE). */
export const MIN_SIDE = 32;

const CORNERS = {
  nw: "top-left",
  ne: "top-right",
  sw: "bottom-left",
  se: "bottom-right",
};

/** A drag shorter than this (displayed pixels) is a click, not a box. */
const CLICK_SLOP = 4;

const clamp = (value, low, high) => Math.min(high, Math.max(low, value));

export class RegionBox {
  /**
   * @param {HTMLImageElement} image the query image
   * @param {HTMLElement} element the box (its children .handle[data-corner] are the handles)
   * @param {{change: (box) => void, commit: (box) => void}} on change: the box moved (during a
   *   drag too); commit: the user let go (pointer up, key up, select, clear)
   */
  constructor(image, element, on) {
    this.image = image;
    this.element = element;
    this.on = on;
    this.box = null; // {x0, y0, x1, y1} in natural pixels, or null
    this.drag = null;
    image.addEventListener("pointerdown", (event) => this.start(event, "new", null));
    element.addEventListener("pointerdown", (event) => {
      const corner = event.target.dataset.corner;
      this.start(event, corner ? "resize" : "move", corner || null);
    });
    for (const target of [image, element]) {
      target.addEventListener("pointermove", (event) => this.follow(event));
      target.addEventListener("pointerup", (event) => this.finish(event));
      target.addEventListener("pointercancel", (event) => this.finish(event));
    }
    element.addEventListener("keydown", (event) => this.key(event));
    element.addEventListener("keyup", (event) => {
      if (event.key.startsWith("Arrow")) this.on.commit(this.box);
    });
    new ResizeObserver(() => this.render()).observe(image);
  }

  get natural() {
    return { width: this.image.naturalWidth, height: this.image.naturalHeight };
  }

  /** Natural pixels per displayed pixel (the same on both axes: the image keeps its ratio). */
  get scale() {
    const shown = this.image.getBoundingClientRect();
    return shown.width ? this.natural.width / shown.width : 1;
  }

  /** The box as the server reads it, "x0,y0,x1,y1" in whole natural pixels; null if none. */
  text() {
    return this.box ? [this.box.x0, this.box.y0, this.box.x1, this.box.y1].join(",") : null;
  }

  /** Width and height of the box in natural pixels. */
  size() {
    return this.box ? [this.box.x1 - this.box.x0, this.box.y1 - this.box.y0] : [0, 0];
  }

  tooSmall() {
    return this.box !== null && Math.min(...this.size()) < MIN_SIDE;
  }

  /** Forget the box (a new query image, or the user cleared it). */
  clear({ commit = true } = {}) {
    const had = this.box !== null;
    this.box = null;
    this.drag = null;
    this.render();
    this.on.change(null);
    if (had && commit) this.on.commit(null);
  }

  /** A box over the middle half of the image, for keyboard users; focused. */
  selectCentred() {
    const { width, height } = this.natural;
    if (!width || !height) return;
    this.set(width / 4, height / 4, (3 * width) / 4, (3 * height) / 4);
    this.element.focus();
    this.on.commit(this.box);
  }

  set(x0, y0, x1, y1) {
    const { width, height } = this.natural;
    const xs = [clamp(Math.round(x0), 0, width), clamp(Math.round(x1), 0, width)];
    const ys = [clamp(Math.round(y0), 0, height), clamp(Math.round(y1), 0, height)];
    this.box = {
      x0: Math.min(...xs),
      y0: Math.min(...ys),
      x1: Math.max(...xs),
      y1: Math.max(...ys),
    };
    this.render();
    this.on.change(this.box);
  }

  /** The pointer's position in natural pixels, inside the image. */
  point(event) {
    const shown = this.image.getBoundingClientRect();
    const { width, height } = this.natural;
    return {
      x: clamp((event.clientX - shown.left) * this.scale, 0, width),
      y: clamp((event.clientY - shown.top) * this.scale, 0, height),
    };
  }

  start(event, mode, corner) {
    if (event.button !== 0 || !this.natural.width) return;
    event.preventDefault();
    event.stopPropagation();
    event.currentTarget.setPointerCapture(event.pointerId);
    const at = this.point(event);
    let anchor = at;
    if (mode === "resize") {
      // The corner opposite the one held stays where it is.
      anchor = {
        x: corner.includes("w") ? this.box.x1 : this.box.x0,
        y: corner.includes("n") ? this.box.y1 : this.box.y0,
      };
    }
    this.drag = {
      mode,
      pointer: event.pointerId,
      at,
      anchor,
      before: this.box && { ...this.box },
      clientX: event.clientX,
      clientY: event.clientY,
    };
  }

  follow(event) {
    const drag = this.drag;
    if (!drag || event.pointerId !== drag.pointer) return;
    event.preventDefault();
    const p = this.point(event);
    if (drag.mode === "move") {
      const { width, height } = this.natural;
      const b = drag.before;
      const dx = clamp(p.x - drag.at.x, -b.x0, width - b.x1);
      const dy = clamp(p.y - drag.at.y, -b.y0, height - b.y1);
      this.set(b.x0 + dx, b.y0 + dy, b.x1 + dx, b.y1 + dy);
    } else {
      this.set(drag.anchor.x, drag.anchor.y, p.x, p.y);
    }
  }

  finish(event) {
    const drag = this.drag;
    if (!drag || event.pointerId !== drag.pointer) return;
    this.drag = null;
    const moved = Math.hypot(event.clientX - drag.clientX, event.clientY - drag.clientY);
    if (moved < CLICK_SLOP) {
      // A click: keep the box there was (a click is not a region).
      if (drag.before) {
        this.set(drag.before.x0, drag.before.y0, drag.before.x1, drag.before.y1);
      } else {
        this.clear({ commit: false });
      }
      return;
    }
    // The keyboard takes over from here (arrows move the box) and a screen reader reads it.
    this.element.focus({ preventScroll: true });
    this.on.commit(this.box);
  }

  key(event) {
    const steps = {
      ArrowLeft: [-1, 0],
      ArrowRight: [1, 0],
      ArrowUp: [0, -1],
      ArrowDown: [0, 1],
    };
    if (!this.box || !(event.key in steps)) return;
    event.preventDefault();
    const { width, height } = this.natural;
    const unit = Math.max(1, Math.round(Math.max(width, height) / 100)) * (event.shiftKey ? 10 : 1);
    const [sx, sy] = steps[event.key];
    const dx = sx * unit;
    const dy = sy * unit;
    const b = this.box;
    const corner = event.target.dataset.corner;
    if (!corner) {
      const mx = clamp(dx, -b.x0, width - b.x1);
      const my = clamp(dy, -b.y0, height - b.y1);
      this.set(b.x0 + mx, b.y0 + my, b.x1 + mx, b.y1 + my);
      return;
    }
    // A corner moves within the image and never past the opposite side (keeps its identity).
    let { x0, y0, x1, y1 } = b;
    if (corner.includes("w")) x0 = clamp(x0 + dx, 0, x1 - 1);
    else x1 = clamp(x1 + dx, x0 + 1, width);
    if (corner.includes("n")) y0 = clamp(y0 + dy, 0, y1 - 1);
    else y1 = clamp(y1 + dy, y0 + 1, height);
    this.set(x0, y0, x1, y1);
  }

  /** Draw the box over the image at the image's displayed size. */
  render() {
    const el = this.element;
    if (!this.box || !this.natural.width) {
      el.hidden = true;
      return;
    }
    const s = this.scale;
    const b = this.box;
    el.hidden = false;
    // CSSOM, not a style attribute: the page's CSP forbids inline style attributes.
    el.style.left = `${b.x0 / s}px`;
    el.style.top = `${b.y0 / s}px`;
    el.style.width = `${(b.x1 - b.x0) / s}px`;
    el.style.height = `${(b.y1 - b.y0) / s}px`;
    const { width, height } = this.natural;
    el.setAttribute(
      "aria-label",
      `Search region from ${b.x0},${b.y0} to ${b.x1},${b.y1} of a ${width}×${height} image`,
    );
    for (const handle of el.querySelectorAll(".handle")) {
      const corner = handle.dataset.corner;
      const x = corner.includes("w") ? b.x0 : b.x1;
      const y = corner.includes("n") ? b.y0 : b.y1;
      handle.setAttribute("aria-label", `${CORNERS[corner]} corner of the region, at ${x},${y}`);
    }
  }
}

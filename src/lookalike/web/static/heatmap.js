// Heatmaps of an explanation (/api/explain), drawn from the numbers as a semi-transparent
// colour overlay on a canvas laid exactly over the picture an <img> shows.

/** Colour of a value in [0, 1]: clear for nothing, blue through yellow to red for the most;
 * opacity grows with the square root, so parts that agree half as much still show. */
function colour(value) {
  const v = Math.min(1, Math.max(0, Number(value) || 0));
  const red = Math.round(255 * Math.min(1, 2 * v));
  const green = Math.round(255 * (v < 0.5 ? 2 * v : 2 * (1 - v)));
  const blue = Math.round(255 * Math.max(0, 1 - 2 * v));
  return [red, green, blue, Math.round(200 * Math.sqrt(v))];
}

/** Where an <img> draws its picture inside its box (object-fit: contain or fill), in CSS px
 * relative to the element's offset parent. */
function pictureRect(image) {
  const boxWidth = image.clientWidth;
  const boxHeight = image.clientHeight;
  let width = boxWidth;
  let height = boxHeight;
  if (getComputedStyle(image).objectFit === "contain" && image.naturalWidth) {
    const scale = Math.min(boxWidth / image.naturalWidth, boxHeight / image.naturalHeight);
    width = image.naturalWidth * scale;
    height = image.naturalHeight * scale;
  }
  return {
    left: image.offsetLeft + image.clientLeft + (boxWidth - width) / 2,
    top: image.offsetTop + image.clientTop + (boxHeight - height) / 2,
    width,
    height,
  };
}

/**
 * Draw ``heatmap`` (rows of non-negative numbers, top row first, maximum 1) over ``image`` on
 * ``canvas`` (absolutely positioned in the image's offset parent). Cells are blended smoothly.
 */
export function drawHeatmap(canvas, image, heatmap) {
  const rows = heatmap.length;
  const cols = rows ? heatmap[0].length : 0;
  const rect = pictureRect(image);
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.max(1, Math.round(rect.width * ratio));
  canvas.height = Math.max(1, Math.round(rect.height * ratio));
  canvas.style.left = `${rect.left}px`;
  canvas.style.top = `${rect.top}px`;
  canvas.style.width = `${rect.width}px`;
  canvas.style.height = `${rect.height}px`;
  const context = canvas.getContext("2d");
  context.clearRect(0, 0, canvas.width, canvas.height);
  canvas.hidden = false;
  if (!rows || !cols) return;
  const cells = document.createElement("canvas");
  cells.width = cols;
  cells.height = rows;
  const pixels = new ImageData(cols, rows);
  heatmap.forEach((row, y) => {
    row.forEach((value, x) => pixels.data.set(colour(value), (y * cols + x) * 4));
  });
  cells.getContext("2d").putImageData(pixels, 0, 0);
  context.imageSmoothingEnabled = true;
  context.imageSmoothingQuality = "high";
  context.drawImage(cells, 0, 0, canvas.width, canvas.height);
}

/** Take an overlay away. */
export function clearHeatmap(canvas) {
  canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
  canvas.hidden = true;
}

/** Whether any value of ``heatmap`` is above zero. */
export function agrees(heatmap) {
  return heatmap.some((row) => row.some((value) => value > 0));
}

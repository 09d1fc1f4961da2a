/** x / of as a percent, 2 decimals; 0 when there is nothing to divide by. */
export const percent = (x: number, of: number) => of === 0 ? 0 : Math.round(x / of * 10_000) / 100

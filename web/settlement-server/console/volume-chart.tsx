/**
 * Captured payment volume over time as an inline SVG bar chart, drawn from `GET /admin/v1/volume`:
 * one bar per UTC hour (the last 24) or day (the last 30), empty periods drawn as zero. Bar heights
 * are scaled with bigint arithmetic; the exact figures are in the table under the chart.
 */
import { amountText, timeText } from '../../shared/console/format.ts';
import { barsOf, type Bar, type BucketSize, type VolumeBucket } from './volume.ts';

export type { BucketSize, VolumeBucket };

const width = 760;
const height = 260;
const margin = { top: 16, right: 12, bottom: 40, left: 96 };

function periodLabel(start: Date, size: BucketSize): string {
  const text = timeText(start.toISOString());
  return size === 'hour' ? text.slice(11, 16) : text.slice(5, 10);
}

export function VolumeChart(props: { buckets: readonly VolumeBucket[]; currency: string; size: BucketSize; now: Date }) {
  const bars = barsOf(props.buckets, props.currency, props.size, props.now);
  const max = bars.reduce((m, bar) => (bar.captured > m ? bar.captured : m), 0n);
  const total = bars.reduce((sum, bar) => sum + bar.captured, 0n);
  const captures = bars.reduce((sum, bar) => sum + bar.captures, 0);
  const plotWidth = width - margin.left - margin.right;
  const plotHeight = height - margin.top - margin.bottom;
  const slot = plotWidth / bars.length;
  const barHeight = (value: bigint) => (max === 0n ? 0 : Number((value * BigInt(plotHeight * 100)) / max) / 100);
  const labelEvery = props.size === 'hour' ? 3 : 5;
  const span = props.size === 'hour' ? 'the last 24 hours' : 'the last 30 days';
  const titleId = `volume-title-${props.size}`;
  const descId = `volume-desc-${props.size}`;
  const description = `${captures} capture${captures === 1 ? '' : 's'} totalling ${amountText(total.toString(), props.currency)} in ${span}; the largest ${props.size} had ${amountText(max.toString(), props.currency)}.`;
  return (
    <figure className="chart" data-testid="volume-chart">
      <svg viewBox={`0 0 ${width} ${height}`} role="img" aria-labelledby={`${titleId} ${descId}`}>
        <title id={titleId}>{`Captured volume in ${props.currency} per ${props.size} (UTC)`}</title>
        <desc id={descId}>{description}</desc>
        {[0, 1, 2].map((step) => {
          const y = margin.top + plotHeight - (plotHeight * step) / 2;
          const value = (max * BigInt(step)) / 2n;
          return (
            <g key={step}>
              <line className="grid" x1={margin.left} x2={width - margin.right} y1={y} y2={y} />
              <text className="axis-label" x={margin.left - 8} y={y + 4} textAnchor="end">
                {amountText(value.toString(), props.currency)}
              </text>
            </g>
          );
        })}
        {bars.map((bar, i) => {
          const h = barHeight(bar.captured);
          const x = margin.left + i * slot + slot * 0.15;
          return (
            <g key={bar.start.toISOString()}>
              {h > 0 && (
                <rect className="bar" x={x} y={margin.top + plotHeight - h} width={slot * 0.7} height={Math.max(h, 1)} data-captured={bar.captured.toString()}>
                  <title>{`${timeText(bar.start.toISOString())} UTC: ${amountText(bar.captured.toString(), props.currency)} (${bar.captures})`}</title>
                </rect>
              )}
              {i % labelEvery === (bars.length - 1) % labelEvery && (
                <text className="axis-label" x={margin.left + i * slot + slot / 2} y={height - margin.bottom + 16} textAnchor="middle">
                  {periodLabel(bar.start, props.size)}
                </text>
              )}
            </g>
          );
        })}
        <line className="axis" x1={margin.left} x2={width - margin.right} y1={margin.top + plotHeight} y2={margin.top + plotHeight} />
        <text className="axis-label" x={margin.left + plotWidth / 2} y={height - 6} textAnchor="middle">
          {props.size === 'hour' ? 'hour starting (UTC)' : 'day (UTC, month-day)'}
        </text>
      </svg>
      <figcaption className="hint">{description}</figcaption>
      <VolumeTable bars={bars} currency={props.currency} size={props.size} span={span} />
    </figure>
  );
}

/** The chart's figures as a table (the periods with captures), for screen readers and copying. */
function VolumeTable(props: { bars: readonly Bar[]; currency: string; size: BucketSize; span: string }) {
  return (
    <details>
      <summary>The chart’s figures as a table</summary>
      <table>
        <caption>Captured volume in {props.currency} per {props.size}, periods with captures</caption>
        <thead>
          <tr>
            <th scope="col">{props.size === 'hour' ? 'Hour starting (UTC)' : 'Day (UTC)'}</th>
            <th scope="col" className="num">
              Captures
            </th>
            <th scope="col" className="num">
              Captured
            </th>
          </tr>
        </thead>
        <tbody>
          {props.bars.filter((bar) => bar.captures > 0).length === 0 ? (
            <tr>
              <td colSpan={3} className="empty">
                No captures in {props.span}.
              </td>
            </tr>
          ) : (
            props.bars
              .filter((bar) => bar.captures > 0)
              .map((bar) => (
                <tr key={bar.start.toISOString()}>
                  <td>{timeText(bar.start.toISOString())}</td>
                  <td className="num">{bar.captures}</td>
                  <td className="num">{amountText(bar.captured.toString(), props.currency)}</td>
                </tr>
              ))
          )}
        </tbody>
      </table>
    </details>
  );
}

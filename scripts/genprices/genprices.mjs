#!/usr/bin/env node
// genprices writes TokenGuard's price snapshot (app/pricing/prices.json) from the release of
// @pydantic/genai-prices pinned in package.json / package-lock.json. It runs at generation time
// only (go generate ./app/pricing, or by hand); the binary and `go test ./...` read the JSON it
// writes and never need Node.
//
//   node scripts/genprices/genprices.mjs [-o OUT.json] [--date YYYY-MM-DD]
//
// What it keeps: the Anthropic, Google (Gemini) and OpenAI providers, each model's id, name,
// match rule, context window and the per-million-token prices TokenGuard bills (text, cache
// read, cache write 5 m and 1 h, audio and image), with their input-size tiers and dated price
// changes. What it drops is listed inside the snapshot: models with no token price (priced by
// TokenGuard's default instead, never free), Google's Vertex AI copies of Claude models (they
// are Anthropic's), and the price keys TokenGuard does not bill (web searches, audio hours…).
// It fails rather than write a snapshot it cannot express faithfully.
import { execFileSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const pkgName = '@pydantic/genai-prices'

function args() {
  const out = { out: resolve(here, '../../app/pricing/prices.json'), date: new Date().toISOString().slice(0, 10) }
  const a = process.argv.slice(2)
  for (let i = 0; i < a.length; i++) {
    if (a[i] === '-o') out.out = resolve(a[++i])
    else if (a[i] === '--date') out.date = a[++i]
    else throw new Error(`unknown argument ${a[i]}`)
  }
  if (!/^\d{4}-\d{2}-\d{2}$/.test(out.date)) throw new Error(`--date ${out.date}: want YYYY-MM-DD`)
  return out
}

// The pinned release is installed exactly as the lock file says (integrity-checked by npm).
function load() {
  if (!existsSync(join(here, 'node_modules', pkgName, 'package.json'))) {
    execFileSync('npm', ['ci', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: here, stdio: 'inherit' })
  }
  const require = createRequire(join(here, 'package.json'))
  const pkgDir = join(here, 'node_modules', pkgName)
  const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'))
  const pinned = JSON.parse(readFileSync(join(here, 'package.json'), 'utf8')).dependencies[pkgName]
  if (pkg.version !== pinned) throw new Error(`installed ${pkgName} ${pkg.version}, pinned ${pinned}: run npm ci in ${here}`)
  return { gp: require(pkgName), pkg, license: readFileSync(join(pkgDir, 'LICENSE'), 'utf8') }
}

// TokenGuard's price keys: usage classes it reads from the providers' responses.
const billed = new Set([
  'input_mtok', 'cache_read_mtok', 'cache_write_mtok', 'cache_write_1h_mtok', 'output_mtok',
  'input_audio_mtok', 'cache_audio_read_mtok', 'output_audio_mtok',
  'input_image_mtok', 'cache_image_read_mtok', 'output_image_mtok',
])

// rule converts a genai-prices match rule. Go's regexp (RE2) has no look-ahead, so the one
// form the data uses, "^(?!P)" (the whole pattern a negative look-ahead), becomes {not: ^P};
// any other look-around stops generation.
function rule(r, where) {
  if (r.or) return { or: r.or.map((x) => rule(x, where)) }
  if (r.and) return { and: r.and.map((x) => rule(x, where)) }
  if (r.regex !== undefined) {
    const m = /^\^\(\?!(.*)\)$/.exec(r.regex)
    if (m) return { not: { regex: `^(?:${m[1]})` } }
    if (/\(\?[=!<]/.test(r.regex)) throw new Error(`${where}: regex ${r.regex} needs look-around`)
    return { regex: r.regex }
  }
  for (const k of ['equals', 'starts_with', 'ends_with', 'contains']) {
    if (r[k] !== undefined) return { [k]: r[k].toLowerCase() }
  }
  throw new Error(`${where}: unknown match rule ${JSON.stringify(r)}`)
}

function prices(p, where, dropped) {
  const out = {}
  for (const [k, v] of Object.entries(p)) {
    if (v === undefined) continue
    if (!billed.has(k)) {
      dropped.add(k)
      continue
    }
    if (typeof v === 'number') out[k] = v
    else if (v && typeof v.base === 'number' && Array.isArray(v.tiers)) {
      out[k] = { base: v.base, tiers: v.tiers.map((t) => ({ start: t.start, price: t.price })).sort((a, b) => a.start - b.start) }
    } else throw new Error(`${where}: price ${k} is ${JSON.stringify(v)}`)
  }
  return out
}

// periods turns a model's prices (one set, or a list of sets with start-date constraints) into
// the snapshot's ordered list: the first set has no "from", later ones start on their date.
function periods(m, where, dropped) {
  if (!Array.isArray(m.prices)) return [{ prices: prices(m.prices, where, dropped) }]
  return m.prices.map((c, i) => {
    if (i === 0) {
      if (c.constraint) throw new Error(`${where}: first price set has a constraint`)
      return { prices: prices(c.prices, where, dropped) }
    }
    if (!c.constraint || c.constraint.type !== 'start_date') {
      throw new Error(`${where}: price constraint ${JSON.stringify(c.constraint)} is not a start date`)
    }
    return { from: c.constraint.start_date, prices: prices(c.prices, where, dropped) }
  })
}

function main() {
  const opt = args()
  const { gp, pkg, license } = load()
  const dropped = new Set()
  const omitted = []
  // The data's own provider order (genai-prices tries providers in this order).
  const ids = ['anthropic', 'google', 'openai']
  const raw = ids.map((id) => {
    const p = gp.findProvider({ providerId: id })
    if (!p || p.id !== id) throw new Error(`provider ${id} missing from ${pkgName} ${pkg.version}`)
    return p
  })
  const matches = (r, s) => r.or ? r.or.some((x) => matches(x, s)) : r.and ? r.and.every((x) => matches(x, s))
    : r.equals !== undefined ? s === r.equals.toLowerCase() : r.starts_with !== undefined ? s.startsWith(r.starts_with.toLowerCase())
    : r.ends_with !== undefined ? s.endsWith(r.ends_with.toLowerCase()) : r.contains !== undefined ? s.includes(r.contains.toLowerCase())
    : new RegExp(r.regex).test(s)
  const providers = raw.map((p) => {
    const models = []
    for (const m of p.models) {
      const where = `${p.id}/${m.id}`
      const other = raw.find((q) => q !== p && q.model_match && matches(q.model_match, m.id.toLowerCase()))
      if (other) {
        omitted.push({ provider: p.id, model: m.id, reason: `served by ${other.id}` })
        continue
      }
      const ps = periods(m, where, dropped)
      if (!ps.every((x) => x.prices.input_mtok !== undefined && (typeof x.prices.input_mtok === 'object' || x.prices.input_mtok > 0))) {
        omitted.push({ provider: p.id, model: m.id, reason: 'no per-token input price' })
        continue
      }
      const out = { id: m.id.toLowerCase(), name: m.name ?? m.id, match: rule(m.match, where) }
      if (m.context_window) out.context_window = m.context_window
      if (m.deprecated) out.deprecated = true
      if (m.price_comments) out.price_comments = m.price_comments
      out.prices = ps
      models.push(out)
    }
    return { id: p.id, name: p.name, pricing_urls: p.pricing_urls ?? [], model_match: rule(p.model_match, p.id), models }
  })
  const snapshot = {
    schema: 1,
    source: `https://www.npmjs.com/package/${pkgName}/v/${pkg.version}`,
    repository: 'https://github.com/pydantic/genai-prices',
    package: pkgName,
    release: pkg.version,
    generated: opt.date,
    generator: 'scripts/genprices/genprices.mjs',
    license: `${pkgName} ${pkg.version} data, used under its licence:\n\n${license.trim()}`,
    omitted_price_keys: [...dropped].sort(),
    omitted_models: omitted,
    providers,
  }
  writeFileSync(opt.out, JSON.stringify(snapshot, null, 1) + '\n')
  const n = providers.reduce((a, p) => a + p.models.length, 0)
  console.log(`genprices: ${pkgName} ${pkg.version}: ${n} models (${providers.map((p) => `${p.id} ${p.models.length}`).join(', ')}) -> ${opt.out}`)
}

main()

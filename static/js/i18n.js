// The page's strings in the user's language: Django's JavaScript catalog (/jsi18n/, loaded
// by base.html before any module) defines gettext and friends. Every string the page
// shows goes through `_` (or `ngettext`), so `make messages` finds it for djangojs.po.
const catalog = globalThis;

export const _ = (text) => (catalog.gettext ? catalog.gettext(text) : text);

export const ngettext = (singular, plural, count) =>
  catalog.ngettext ? catalog.ngettext(singular, plural, count) : count === 1 ? singular : plural;

// interpolate("%(n)s frames", { n: 3 }): named placeholders, as in Python's % formatting.
export const interpolate = (text, values) =>
  text.replace(/%\((\w+)\)s/g, (whole, name) => (name in values ? String(values[name]) : whole));

// The page's language as a BCP 47 tag (en, zh-Hans): the default speech language.
export const pageLanguage = () => document.documentElement.lang || "en";

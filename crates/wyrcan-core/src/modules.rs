//! Kernel module selection: which modules a device needs and in which order
//! to load them, read from the index files `depmod` writes (`modules.alias`,
//! `modules.dep`, `modules.builtin`).
//!
//! PID 1 uses it for coldplug (match every `/sys/bus/*/devices/*/modalias`,
//! then load the result with `finit_module`), and the initrd build uses it to
//! copy only the modules a set of drivers needs. Both must agree with kmod,
//! so matching follows kmod's rules: aliases are `fnmatch(3)` globs compared
//! after `-` → `_` normalization, and dependencies load before their users.

use std::collections::{HashMap, HashSet};

/// Why a module index could not be read or a load order not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModulesError {
    /// A `modules.alias` line that is not `alias PATTERN MODULE`.
    #[error("modules.alias line {line} is {text:?}: expected `alias <pattern> <module>`")]
    BadAlias {
        /// 1-based line number.
        line: usize,
        /// The line as written.
        text: String,
    },
    /// A `modules.dep` line that is not `PATH: [DEP...]`.
    #[error("modules.dep line {line} is {text:?}: expected `<path>.ko: [<dependency path>...]`")]
    BadDep {
        /// 1-based line number.
        line: usize,
        /// The line as written.
        text: String,
    },
    /// A `modules.softdep` line that is not `softdep MODULE [pre: ...] [post: ...]`.
    #[error("modules.softdep line {line} is {text:?}: expected `softdep <module> pre: <modules> post: <modules>`")]
    BadSoftdep {
        /// 1-based line number.
        line: usize,
        /// The line as written.
        text: String,
    },
    /// A module asked for is neither in `modules.dep` nor built in.
    #[error("kernel module {name:?} is not in modules.dep nor built in: is it enabled in this kernel and was depmod run?")]
    UnknownModule {
        /// The name asked for (normalized).
        name: String,
    },
    /// `modules.dep` names a dependency that has no line of its own.
    #[error("kernel module {module:?} depends on {dependency:?}, which modules.dep does not list: run depmod again")]
    MissingDependency {
        /// The module that needs it.
        module: String,
        /// The dependency's name.
        dependency: String,
    },
    /// Modules that depend on each other in a loop (depmod refuses these, so the index is damaged).
    #[error("kernel modules depend on each other in a loop ({}): modules.dep is damaged, run depmod again", .0.join(" -> "))]
    Cycle(Vec<String>),
}

/// A module that can be loaded: where its file is and what it needs first.
#[derive(Debug, Clone)]
struct Module {
    /// The path as written in `modules.dep`, relative to `/lib/modules/<kver>`.
    path: String,
    /// Normalized names of its dependencies, in `modules.dep` order (reverse load order).
    deps: Vec<String>,
}

/// One `alias` line, normalized once so matching does no allocation.
#[derive(Debug, Clone)]
struct Alias {
    pattern: Vec<u8>,
    /// How many leading bytes of `pattern` are plain characters: a cheap
    /// prefix test that rejects most of the ~26k aliases before globbing.
    literal_prefix: usize,
    module: String,
}

/// The parsed index of one kernel's modules.
#[derive(Debug, Clone, Default)]
pub struct ModuleIndex {
    aliases: Vec<Alias>,
    modules: HashMap<String, Module>,
    builtin: HashSet<String>,
    /// `modules.softdep`: module → (load before, load after), as written
    /// (module names or aliases).
    softdeps: HashMap<String, (Vec<String>, Vec<String>)>,
}

/// One step of visiting a module in [`ModuleIndex::load_order`].
enum Step<'a> {
    /// Make sure this module is loaded first; `soft` ones may be missing or form loops.
    Visit(&'a str, bool),
    /// Load the module itself.
    Emit,
}

/// A module's canonical name: kmod treats `-` and `_` as the same character.
pub fn normalize_name(name: &str) -> String {
    name.replace('-', "_")
}

/// The module name of a `modules.dep` / `modules.builtin` path:
/// `kernel/drivers/net/virtio_net.ko.xz` → `virtio_net`.
pub fn name_from_path(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let file = [".xz", ".zst", ".gz"]
        .iter()
        .find_map(|c| file.strip_suffix(c))
        .unwrap_or(file);
    normalize_name(file.strip_suffix(".ko").unwrap_or(file))
}

/// kmod's `alias_normalize()`: `-` becomes `_` except inside `[...]`, where
/// it is a range. Applied to both patterns and queries so they compare alike.
fn normalize_alias(alias: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(alias.len());
    let mut in_class = false;
    for &b in alias.as_bytes() {
        match b {
            b'[' => in_class = true,
            b']' => in_class = false,
            b'-' if !in_class => {
                out.push(b'_');
                continue;
            }
            _ => {}
        }
        out.push(b);
    }
    out
}

fn literal_prefix(pattern: &[u8]) -> usize {
    pattern
        .iter()
        .position(|b| matches!(b, b'*' | b'?' | b'[' | b'\\'))
        .unwrap_or(pattern.len())
}

impl ModuleIndex {
    /// Parses the text of `modules.alias`, `modules.dep` and `modules.builtin`
    /// (pass `""` for a file you do not have). Blank lines and `#` comments are skipped.
    pub fn parse(alias: &str, dep: &str, builtin: &str) -> Result<ModuleIndex, ModulesError> {
        let mut index = ModuleIndex::default();
        for (i, line) in alias.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace();
            match (words.next(), words.next(), words.next(), words.next()) {
                (Some("alias"), Some(pattern), Some(module), None) => {
                    let pattern = normalize_alias(pattern);
                    index.aliases.push(Alias {
                        literal_prefix: literal_prefix(&pattern),
                        pattern,
                        module: normalize_name(module),
                    });
                }
                _ => {
                    return Err(ModulesError::BadAlias {
                        line: i + 1,
                        text: line.to_string(),
                    })
                }
            }
        }
        for (i, line) in dep.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = || ModulesError::BadDep {
                line: i + 1,
                text: line.to_string(),
            };
            let (path, deps) = line.split_once(':').ok_or_else(bad)?;
            let path = path.trim();
            if path.is_empty() || path.contains(char::is_whitespace) {
                return Err(bad());
            }
            index.modules.insert(
                name_from_path(path),
                Module {
                    path: path.to_string(),
                    deps: deps.split_whitespace().map(name_from_path).collect(),
                },
            );
        }
        index.builtin = builtin
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(name_from_path)
            .collect();
        Ok(index)
    }

    /// Names of the modules whose alias pattern matches `modalias` (e.g. the
    /// contents of a device's `modalias` file), each once, in `modules.alias`
    /// order. Built-in modules have no lines in `modules.alias`, so a device
    /// driven by one yields nothing here, which is right: nothing to load.
    pub fn match_modalias(&self, modalias: &str) -> Vec<String> {
        let query = normalize_alias(modalias.trim());
        let mut out: Vec<String> = Vec::new();
        for alias in &self.aliases {
            let prefix = &alias.pattern[..alias.literal_prefix];
            if query.starts_with(prefix)
                && fnmatch(&alias.pattern, &query)
                && !out.contains(&alias.module)
            {
                out.push(alias.module.clone());
            }
        }
        out
    }

    /// Adds the text of `modules.softdep` (`softdep MOD pre: A B post: C`):
    /// modules that are not symbol dependencies but that a module needs to
    /// work, e.g. `r8169` needs the `realtek` PHY driver and `libcrc32c` a
    /// `crc32c` implementation. Names after `pre:` load before the module,
    /// after `post:` right after it; words before either are ignored, and
    /// only a module's first line counts, as in kmod.
    pub fn with_softdeps(mut self, softdep: &str) -> Result<ModuleIndex, ModulesError> {
        for (i, line) in softdep.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace();
            let (Some("softdep"), Some(module)) = (words.next(), words.next()) else {
                return Err(ModulesError::BadSoftdep {
                    line: i + 1,
                    text: line.to_string(),
                });
            };
            // kmod takes only the first softdep line of a module (as
            // module-init-tools did): btrfs has four and loads one.
            let std::collections::hash_map::Entry::Vacant(slot) =
                self.softdeps.entry(normalize_name(module))
            else {
                continue;
            };
            let entry = slot.insert((Vec::new(), Vec::new()));
            let mut list = None;
            for w in words {
                match w {
                    "pre:" => list = Some(&mut entry.0),
                    "post:" => list = Some(&mut entry.1),
                    _ => {
                        if let Some(l) = list.as_mut() {
                            l.push(w.to_string());
                        }
                    }
                }
            }
        }
        Ok(self)
    }

    /// Modules a soft dependency (a module name or an alias) stands for, in
    /// kmod's lookup order: the module of that name, else every module its
    /// alias matches (a built-in module needs nothing: it has neither).
    fn resolve_soft(&self, name: &str) -> Vec<&str> {
        if let Some((k, _)) = self.modules.get_key_value(&normalize_name(name)) {
            return vec![k.as_str()];
        }
        self.match_modalias(name)
            .iter()
            .filter_map(|m| self.modules.get_key_value(m).map(|(k, _)| k.as_str()))
            .collect()
    }

    /// What visiting `name` involves, in order: its dependencies (load order,
    /// i.e. `modules.dep` reversed), its `pre:` soft dependencies, the module
    /// itself, its `post:` soft dependencies. This is kmod's probe order.
    fn plan(&self, name: &str) -> Vec<Step<'_>> {
        let module = &self.modules[name];
        let (pre, post) = self
            .softdeps
            .get(name)
            .map(|(a, b)| (a.as_slice(), b.as_slice()))
            .unwrap_or_default();
        let soft = |list: &[String]| -> Vec<Step<'_>> {
            list.iter()
                .flat_map(|s| self.resolve_soft(s))
                .map(|m| Step::Visit(m, true))
                .collect()
        };
        let mut steps: Vec<Step<'_>> = module
            .deps
            .iter()
            .rev()
            .map(|d| Step::Visit(d, false))
            .collect();
        steps.extend(soft(pre));
        steps.push(Step::Emit);
        steps.extend(soft(post));
        steps
    }

    /// The `modules.dep` paths to load, in order, so that `names` all end up
    /// loaded: every dependency before the modules that use it, each module
    /// once, built-in modules skipped (they need no loading), soft
    /// dependencies (see [`with_softdeps`](ModuleIndex::with_softdeps)) where kmod puts them.
    ///
    /// The kernel resolves a module's symbols when it is loaded, so a module
    /// loaded before its dependencies fails. `modules.dep` lists dependencies
    /// in reverse load order, so they are visited last to first; the walk
    /// keeps an explicit stack rather than recursing, because a damaged index
    /// must give an error, never a stack overflow in PID 1.
    pub fn load_order(&self, names: &[String]) -> Result<Vec<String>, ModulesError> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            Visiting,
            Done,
        }
        let mut marks: HashMap<&str, Mark> = HashMap::new();
        let mut out = Vec::new();
        for requested in names {
            let name = normalize_name(requested.trim());
            if self.builtin.contains(&name) {
                continue;
            }
            let Some((root, _)) = self.modules.get_key_value(&name) else {
                return Err(ModulesError::UnknownModule { name });
            };
            if marks.contains_key(root.as_str()) {
                continue;
            }
            marks.insert(root, Mark::Visiting);
            // (module name, its plan, how many steps are done, reached by a soft dependency)
            let mut stack: Vec<(&str, Vec<Step<'_>>, usize, bool)> =
                vec![(root, self.plan(root), 0, false)];
            while let Some((name, steps, next, _)) = stack.last_mut() {
                let name: &str = name;
                let Some(step) = steps.get(*next) else {
                    stack.pop();
                    continue;
                };
                *next += 1;
                let (dep, soft) = match *step {
                    Step::Emit => {
                        out.push(self.modules[name].path.clone());
                        marks.insert(name, Mark::Done);
                        continue;
                    }
                    Step::Visit(dep, soft) => (dep, soft),
                };
                if self.builtin.contains(dep) {
                    continue;
                }
                let Some((dep, _)) = self.modules.get_key_value(dep) else {
                    return Err(ModulesError::MissingDependency {
                        module: name.to_string(),
                        dependency: dep.to_string(),
                    });
                };
                match marks.get(dep.as_str()) {
                    Some(Mark::Done) => {}
                    // A soft dependency on a module being visited: its load
                    // is already on the way, and soft loops are legal.
                    Some(Mark::Visiting) if soft => {}
                    Some(Mark::Visiting) => {
                        let start = stack.iter().position(|(n, ..)| *n == dep).unwrap_or(0);
                        // A loop closed through a soft dependency is the soft
                        // dependency's problem: kmod skips it, and so do we.
                        if stack[start + 1..].iter().any(|f| f.3) {
                            continue;
                        }
                        let mut chain: Vec<String> =
                            stack[start..].iter().map(|(n, ..)| n.to_string()).collect();
                        chain.push(dep.clone());
                        return Err(ModulesError::Cycle(chain));
                    }
                    None => {
                        marks.insert(dep, Mark::Visiting);
                        stack.push((dep, self.plan(dep), 0, soft));
                    }
                }
            }
        }
        Ok(out)
    }
}

/// `fnmatch(pattern, text, 0)` as glibc does it and kmod uses it for
/// aliases: `*` any run of bytes (including `/`: no `FNM_PATHNAME`), `?` any
/// byte, `[...]` a class (`!` or `^` negates, ranges, `[:name:]`), `\`
/// quotes the next byte, and a `[` without its `]` is a plain `[`.
///
/// Iterative, with a single backtrack point: on a mismatch only the last `*`
/// is retried one byte further, which is enough because every other token
/// matches exactly one byte. The cost is at most `pattern.len() * text.len()`
/// steps, whatever the input, where the naive recursive matcher is exponential.
pub fn fnmatch(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // Pattern index just after the last `*` seen, and the text index it was tried at.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if let Some(&c) = pattern.get(p) {
            let step = match c {
                b'*' => {
                    star = Some((p + 1, t));
                    p += 1;
                    continue;
                }
                b'?' => Some(1),
                b'[' => match class(pattern, p + 1, text[t]) {
                    Some((true, end)) => Some(end - p),
                    Some((false, _)) => None,
                    None => (text[t] == b'[').then_some(1),
                },
                // A trailing `\` matches nothing, as in glibc.
                b'\\' => pattern.get(p + 1).filter(|&&e| e == text[t]).map(|_| 2),
                _ => (c == text[t]).then_some(1),
            };
            if let Some(len) = step {
                p += len;
                t += 1;
                continue;
            }
        }
        match star {
            Some((sp, st)) => {
                p = sp;
                t = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*')
}

/// Matches byte `b` against the class whose body starts at `pattern[start]`
/// (just past the `[`). Returns whether it matched and the index just past
/// the closing `]`, or `None` if the class is not closed (then `[` is literal).
///
/// Ill-formed classes that glibc rejects outright (an unknown `[:name:]`, a
/// `\` or a range cut off by the end of the pattern) never match: glibc
/// returns "no match" for the whole pattern there, and since the pattern
/// cannot succeed without passing the class, failing the class is the same.
fn class(pattern: &[u8], start: usize, b: u8) -> Option<(bool, usize)> {
    const NEVER: Option<(bool, usize)> = Some((false, 0));
    let mut i = start;
    let negate = matches!(pattern.get(i), Some(b'!' | b'^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let c = *pattern.get(i)?;
        if c == b']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        // A named class: `[:digit:]`. glibc only takes lowercase names (a to y,
        // a quirk it has); anything else makes the `[` a plain member.
        if c == b'[' && pattern.get(i + 1) == Some(&b':') {
            let name_len = pattern[i + 2..]
                .iter()
                .position(|&n| !(b'a'..=b'y').contains(&n))
                .unwrap_or(pattern.len() - i - 2);
            if pattern[i + 2 + name_len..].starts_with(b":]") {
                let name = &pattern[i + 2..i + 2 + name_len];
                match named_class(name, b) {
                    Some(m) => matched |= m,
                    None => return NEVER,
                }
                i += 2 + name_len + 2;
                continue;
            }
        }
        let (lo, next) = match c {
            b'\\' => match pattern.get(i + 1) {
                Some(&e) => (e, i + 2),
                None => return NEVER,
            },
            _ => (c, i + 1),
        };
        // A range `a-z`, unless the `-` is right before the `]` (`[a-]` holds `-`).
        if pattern.get(next) == Some(&b'-') && pattern.get(next + 1) != Some(&b']') {
            let (hi, after) = match pattern.get(next + 1) {
                Some(b'\\') => match pattern.get(next + 2) {
                    Some(&e) => (e, next + 3),
                    None => return NEVER,
                },
                Some(&h) => (h, next + 2),
                None => return NEVER,
            };
            matched |= lo <= b && b <= hi;
            i = after;
        } else {
            matched |= b == lo;
            i = next;
        }
    }
}

/// Whether `b` is in the POSIX class `name` (C locale); `None` for a name glibc does not know.
fn named_class(name: &[u8], b: u8) -> Option<bool> {
    Some(match name {
        b"alnum" => b.is_ascii_alphanumeric(),
        b"alpha" => b.is_ascii_alphabetic(),
        b"blank" => b == b' ' || b == b'\t',
        b"cntrl" => b.is_ascii_control(),
        b"digit" => b.is_ascii_digit(),
        b"graph" => b.is_ascii_graphic(),
        b"lower" => b.is_ascii_lowercase(),
        b"print" => b.is_ascii_graphic() || b == b' ',
        b"punct" => b.is_ascii_punctuation(),
        b"space" => b.is_ascii_whitespace() || b == 0x0b,
        b"upper" => b.is_ascii_uppercase(),
        b"xdigit" => b.is_ascii_hexdigit(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! fixture {
        ($kver:literal, $file:literal) => {
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/modules/",
                $kver,
                "/",
                $file
            ))
        };
    }

    /// The excerpt of one real kernel's index and kmod's answers for it (see gen.sh).
    struct Real {
        index: ModuleIndex,
        expected: &'static str,
    }

    fn amd64() -> Real {
        Real {
            index: ModuleIndex::parse(
                fixture!("6.1.0-56-amd64", "modules.alias"),
                fixture!("6.1.0-56-amd64", "modules.dep"),
                fixture!("6.1.0-56-amd64", "modules.builtin"),
            )
            .and_then(|i| i.with_softdeps(fixture!("6.1.0-56-amd64", "modules.softdep")))
            .unwrap(),
            expected: fixture!("6.1.0-56-amd64", "expected"),
        }
    }

    fn cloud() -> Real {
        Real {
            index: ModuleIndex::parse(
                fixture!("6.1.0-56-cloud-amd64", "modules.alias"),
                fixture!("6.1.0-56-cloud-amd64", "modules.dep"),
                fixture!("6.1.0-56-cloud-amd64", "modules.builtin"),
            )
            .and_then(|i| i.with_softdeps(fixture!("6.1.0-56-cloud-amd64", "modules.softdep")))
            .unwrap(),
            expected: fixture!("6.1.0-56-cloud-amd64", "expected"),
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// `kind key: values` lines of `expected`.
    fn expectations<'a>(
        expected: &'a str,
        kind: &'a str,
    ) -> impl Iterator<Item = (&'a str, Vec<String>)> + 'a {
        expected.lines().filter_map(move |l| {
            let rest = l.strip_prefix(kind)?.strip_prefix(' ')?;
            // Modaliases contain `:`, so split at the last `: `.
            let (key, values) = rest.rsplit_once(':')?;
            Some((key, values.split_whitespace().map(str::to_string).collect()))
        })
    }

    #[test]
    fn virtio_net_pci_device_matches_virtio_pci() {
        for real in [amd64(), cloud()] {
            let m = real
                .index
                .match_modalias("pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00");
            assert_eq!(m, strings(&["virtio_pci"]));
            // virtio_pci then creates the virtio-bus device virtio_net binds to.
            let m = real.index.match_modalias("virtio:d00000001v00001AF4\n");
            assert_eq!(m, strings(&["virtio_net"]));
        }
    }

    #[test]
    fn load_order_puts_failover_before_net_failover_before_virtio_net() {
        for real in [amd64(), cloud()] {
            let order = real.index.load_order(&strings(&["virtio_net"])).unwrap();
            let at = |m: &str| {
                order
                    .iter()
                    .position(|p| name_from_path(p) == m)
                    .unwrap_or_else(|| panic!("{m} missing from {order:?}"))
            };
            assert!(at("failover") < at("net_failover"));
            assert!(at("net_failover") < at("virtio_net"));
            assert!(at("virtio_ring") < at("virtio"));
            assert!(at("virtio") < at("virtio_net"));
            assert_eq!(order.last().unwrap(), "kernel/drivers/net/virtio_net.ko");
        }
    }

    /// Every modalias resolves to the modules `modprobe -R` named.
    #[test]
    fn matches_agree_with_modprobe() {
        let mut checked = 0;
        for real in [amd64(), cloud()] {
            for (modalias, want) in expectations(real.expected, "resolve") {
                let mut got = real.index.match_modalias(modalias);
                got.sort();
                assert_eq!(got, want, "{modalias}");
                checked += 1;
            }
        }
        assert_eq!(checked, 14);
    }

    /// Each module's load order is exactly `modprobe --show-depends`'s, soft
    /// dependencies included (kmod lists a module again when it meets it
    /// again; loading it the second time is a no-op, so only the first counts).
    #[test]
    fn load_order_agrees_with_modprobe() {
        let mut checked = 0;
        for real in [amd64(), cloud()] {
            for (module, listed) in expectations(real.expected, "order") {
                let mut want: Vec<String> = Vec::new();
                for p in listed {
                    if !want.contains(&p) {
                        want.push(p);
                    }
                }
                assert_eq!(
                    real.index.load_order(&[module.to_string()]).unwrap(),
                    want,
                    "{module}"
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 12 + 6);
    }

    /// The brief's API alone (no modules.softdep) gives the same virtio order.
    #[test]
    fn load_order_without_softdeps() {
        let index = ModuleIndex::parse(
            fixture!("6.1.0-56-amd64", "modules.alias"),
            fixture!("6.1.0-56-amd64", "modules.dep"),
            "",
        )
        .unwrap();
        assert_eq!(
            index.load_order(&strings(&["virtio_net"])).unwrap(),
            strings(&[
                "kernel/drivers/virtio/virtio_ring.ko",
                "kernel/drivers/virtio/virtio.ko",
                "kernel/net/core/failover.ko",
                "kernel/drivers/net/net_failover.ko",
                "kernel/drivers/net/virtio_net.ko",
            ])
        );
        // Without the softdep file, r8169 comes without its PHY driver.
        assert!(!index
            .load_order(&strings(&["r8169"]))
            .unwrap()
            .iter()
            .any(|p| p.ends_with("/realtek.ko")));
    }

    /// r8169 needs the realtek PHY driver (`softdep r8169 pre: realtek`), and
    /// bnx2x's libcrc32c a crc32c implementation, found through an alias.
    #[test]
    fn soft_dependencies_of_real_nics() {
        let real = amd64();
        assert_eq!(
            real.index.load_order(&strings(&["r8169"])).unwrap(),
            strings(&[
                "kernel/drivers/net/phy/libphy.ko",
                "kernel/drivers/net/phy/mdio_devres.ko",
                "kernel/drivers/net/phy/realtek.ko",
                "kernel/drivers/net/ethernet/realtek/r8169.ko",
            ])
        );
        let bnx2x = real.index.load_order(&strings(&["bnx2x"])).unwrap();
        assert_eq!(
            bnx2x[..3],
            strings(&[
                "kernel/arch/x86/crypto/crc32c-intel.ko",
                "kernel/crypto/crc32c_generic.ko",
                "kernel/lib/libcrc32c.ko",
            ])
        );
    }

    #[test]
    fn softdep_syntax_and_loops() {
        let dep = "k/a.ko: k/b.ko\nk/b.ko:\nk/c.ko:\nk/d.ko: k/a.ko\nk/e.ko: k/a.ko\nk/x.ko:\n";
        let index = ModuleIndex::parse("alias some-alias x\n", dep, "k/builtin.ko\n")
            .unwrap()
            .with_softdeps(
                "# comment\n\
                 softdep a ignored pre: c missing builtin e post: d some_alias\n\
                 softdep c pre: a\n",
            )
            .unwrap();
        // Words before `pre:` are ignored; missing and built-in soft
        // dependencies are skipped; an alias resolves; c's soft dependency on
        // a, and e's hard one on a (reached through a's soft one on e), are
        // loops through a soft edge, so skipped as kmod does.
        assert_eq!(
            index.load_order(&strings(&["a"])).unwrap(),
            strings(&["k/b.ko", "k/c.ko", "k/e.ko", "k/a.ko", "k/d.ko", "k/x.ko"])
        );
        // Only a module's first softdep line counts.
        let twice = ModuleIndex::parse("", "k/a.ko:\nk/b.ko:\nk/c.ko:\n", "")
            .unwrap()
            .with_softdeps("softdep a pre: b\nsoftdep a pre: c\n")
            .unwrap();
        assert_eq!(
            twice.load_order(&strings(&["a"])).unwrap(),
            strings(&["k/b.ko", "k/a.ko"])
        );
        assert_eq!(
            ModuleIndex::default()
                .with_softdeps("softdep\n")
                .unwrap_err(),
            ModulesError::BadSoftdep {
                line: 1,
                text: "softdep".into()
            }
        );
        let e = ModuleIndex::default()
            .with_softdeps("alias a b\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected `softdep <module>"), "{e}");
    }

    #[test]
    fn e1000_only_in_the_generic_kernel() {
        let qemu_e1000 = "pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00";
        assert_eq!(
            amd64().index.match_modalias(qemu_e1000),
            strings(&["e1000"])
        );
        assert!(cloud().index.match_modalias(qemu_e1000).is_empty());
        assert_eq!(
            amd64()
                .index
                .match_modalias("pci:v00008086d000010D3sv00008086sd00000000bc02sc00i00"),
            strings(&["e1000e"])
        );
        assert_eq!(
            cloud().index.load_order(&strings(&["e1000"])),
            Err(ModulesError::UnknownModule {
                name: "e1000".into()
            })
        );
    }

    #[test]
    fn several_devices_load_each_module_once() {
        let real = amd64();
        let mut names = Vec::new();
        for modalias in [
            "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00",
            "pci:v00001AF4d00001041sv00001AF4sd00001100bc02sc00i00",
            "virtio:d00000001v00001AF4",
            "pci:v00001234d00001111sv00001AF4sd00001100bc03sc00i00",
            "fs-efivarfs",
        ] {
            names.extend(real.index.match_modalias(modalias));
        }
        // Two bochs aliases match the VGA device: still one name.
        assert_eq!(
            names,
            strings(&[
                "virtio_pci",
                "virtio_pci",
                "virtio_net",
                "bochs",
                "efivarfs"
            ])
        );
        let order = real.index.load_order(&names).unwrap();
        let unique: HashSet<&String> = order.iter().collect();
        assert_eq!(unique.len(), order.len(), "{order:?}");
        assert_eq!(
            order,
            strings(&[
                "kernel/drivers/virtio/virtio_ring.ko",
                "kernel/drivers/virtio/virtio.ko",
                "kernel/drivers/virtio/virtio_pci_modern_dev.ko",
                "kernel/drivers/virtio/virtio_pci_legacy_dev.ko",
                "kernel/drivers/virtio/virtio_pci.ko",
                "kernel/net/core/failover.ko",
                "kernel/drivers/net/net_failover.ko",
                "kernel/drivers/net/virtio_net.ko",
                "kernel/drivers/gpu/drm/drm.ko",
                "kernel/drivers/gpu/drm/drm_kms_helper.ko",
                "kernel/drivers/gpu/drm/ttm/ttm.ko",
                "kernel/drivers/gpu/drm/drm_ttm_helper.ko",
                "kernel/drivers/gpu/drm/drm_vram_helper.ko",
                "kernel/drivers/gpu/drm/tiny/bochs.ko",
                "kernel/fs/efivarfs/efivarfs.ko",
            ])
        );
    }

    #[test]
    fn builtins_need_no_loading() {
        let real = amd64();
        // modules.builtin writes amd-uncore.ko; either spelling is the same
        // built-in module, and built-ins are never loaded.
        assert_eq!(
            real.index
                .load_order(&strings(&["unix", "amd-uncore", "failover", "af_packet"]))
                .unwrap(),
            strings(&["kernel/net/core/failover.ko"])
        );
    }

    #[test]
    fn dependencies_that_are_built_in_are_skipped() {
        let index = ModuleIndex::parse(
            "",
            "kernel/a.ko: kernel/b.ko kernel/c-d.ko.zst\nkernel/c-d.ko.zst:\n",
            "kernel/b.ko\n",
        )
        .unwrap();
        assert_eq!(
            index.load_order(&strings(&["a"])).unwrap(),
            strings(&["kernel/c-d.ko.zst", "kernel/a.ko"])
        );
        assert_eq!(
            index.load_order(&strings(&["c-d", "c_d", " a "])).unwrap(),
            strings(&["kernel/c-d.ko.zst", "kernel/a.ko"])
        );
    }

    #[test]
    fn compressed_paths_are_kept_as_written() {
        let index = ModuleIndex::parse(
            "alias pci:v00001AF4d* virtio-pci\n",
            "kernel/drivers/virtio/virtio_pci.ko.xz: kernel/drivers/virtio/virtio.ko.xz\n\
             kernel/drivers/virtio/virtio.ko.xz:\n",
            "",
        )
        .unwrap();
        assert_eq!(
            index.match_modalias("pci:v00001AF4d00001000"),
            strings(&["virtio_pci"])
        );
        assert_eq!(
            index.load_order(&strings(&["virtio_pci"])).unwrap(),
            strings(&[
                "kernel/drivers/virtio/virtio.ko.xz",
                "kernel/drivers/virtio/virtio_pci.ko.xz"
            ])
        );
    }

    #[test]
    fn damaged_indexes_are_errors() {
        let e = ModuleIndex::parse("alias onlyone\n", "", "").unwrap_err();
        assert_eq!(
            e,
            ModulesError::BadAlias {
                line: 1,
                text: "alias onlyone".into()
            }
        );
        let e = ModuleIndex::parse("# c\n\nalias a b c\n", "", "")
            .unwrap_err()
            .to_string();
        assert!(e.contains(r#"is "alias a b c": expected"#), "{e}");
        assert_eq!(
            ModuleIndex::parse("", "\nkernel/a.ko kernel/b.ko\n", "").unwrap_err(),
            ModulesError::BadDep {
                line: 2,
                text: "kernel/a.ko kernel/b.ko".into()
            }
        );
        let e = ModuleIndex::parse("", ": kernel/b.ko", "")
            .unwrap_err()
            .to_string();
        assert!(e.contains("modules.dep line 1 is"), "{e}");

        let missing = ModuleIndex::parse("", "kernel/a.ko: kernel/b.ko\n", "").unwrap();
        assert_eq!(
            missing.load_order(&strings(&["a"])),
            Err(ModulesError::MissingDependency {
                module: "a".into(),
                dependency: "b".into()
            })
        );

        let cycle =
            ModuleIndex::parse("", "k/a.ko: k/b.ko\nk/b.ko: k/c.ko\nk/c.ko: k/a.ko\n", "").unwrap();
        assert_eq!(
            cycle.load_order(&strings(&["a"])),
            Err(ModulesError::Cycle(strings(&["a", "b", "c", "a"])))
        );
        let e = cycle.load_order(&strings(&["b"])).unwrap_err().to_string();
        assert!(
            e.starts_with("kernel modules depend on each other in a loop (b -> "),
            "{e}"
        );
    }

    #[test]
    fn long_chains_do_not_recurse() {
        let n = 100_000;
        let dep: String = (0..n)
            .map(|i| format!("k/m{i}.ko: k/m{}.ko\n", i + 1))
            .chain(std::iter::once(format!("k/m{n}.ko:\n")))
            .collect();
        let index = ModuleIndex::parse("", &dep, "").unwrap();
        let order = index.load_order(&strings(&["m0"])).unwrap();
        assert_eq!(order.len(), n + 1);
        assert_eq!(order[0], format!("k/m{n}.ko"));
        assert_eq!(order[n], "k/m0.ko");
    }

    #[test]
    fn name_from_path_table() {
        for (path, name) in [
            ("kernel/drivers/net/virtio_net.ko", "virtio_net"),
            ("kernel/drivers/net/virtio_net.ko.xz", "virtio_net"),
            ("kernel/drivers/net/virtio_net.ko.zst", "virtio_net"),
            ("kernel/drivers/net/virtio_net.ko.gz", "virtio_net"),
            ("kernel/arch/x86/events/amd/amd-uncore.ko", "amd_uncore"),
            ("plain", "plain"),
        ] {
            assert_eq!(name_from_path(path), name, "{path}");
        }
    }

    #[test]
    fn fnmatch_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("", "", true),
            ("", "a", false),
            ("*", "", true),
            ("*", "anything/at:all", true),
            ("a*", "a", true),
            ("a*b", "ab", true),
            ("a*b", "axxb", true),
            ("a*b", "axxbx", false),
            ("a*b*c", "abxbxc", true),
            ("a*b*c", "abxbxd", false),
            ("?", "", false),
            ("?", "x", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("***a", "a", true),
            // Real aliases (Debian 6.1 modules.alias).
            (
                "pci:v00001AF4d*sv*sd*bc*sc*i*",
                "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00",
                true,
            ),
            (
                "pci:v00001AF4d*sv*sd*bc*sc*i*",
                "pci:v00001AF5d00001000sv00001AF4sd00000001bc02sc00i00",
                false,
            ),
            (
                "pci:v00008086d0000100Esv*sd*bc*sc*i*",
                "pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00",
                true,
            ),
            (
                "pci:v00008086d0000100Esv*sd*bc*sc*i*",
                "pci:v00008086d0000100Fsv00001AF4sd00001100bc02sc00i00",
                false,
            ),
            (
                "usb:v1645p0007d013[0-3]dc*dsc*dp*ic*isc*ip*in*",
                "usb:v1645p0007d0132dc00dsc00dp00ic08isc06ip50in00",
                true,
            ),
            (
                "usb:v1645p0007d013[0-3]dc*dsc*dp*ic*isc*ip*in*",
                "usb:v1645p0007d0134dc00dsc00dp00ic08isc06ip50in00",
                false,
            ),
            (
                "mdio:0000000000100010010101100001????",
                "mdio:00000000001000100101011000011010",
                true,
            ),
            (
                "mdio:0000000000100010010101100001????",
                "mdio:0000000000100010010101100001101",
                false,
            ),
            // Classes.
            ("[abc]", "b", true),
            ("[abc]", "d", false),
            ("[!abc]", "d", true),
            ("[^abc]", "a", false),
            ("[]]", "]", true),
            ("[]a]", "a", true),
            ("[!]]", "]", false),
            ("[a-]", "-", true),
            ("[a-c-e]", "e", true),
            ("[[:digit:]]x", "7x", true),
            ("[[:digit:]]x", "ax", false),
            ("[[:xdigit:][:upper:]]", "G", true),
            ("[[:bogus:]]", "b", false),
            // glibc rejects these classes outright, whatever else they hold.
            ("[[:bogus:]b]", "b", false),
            ("[a-", "[a-", false),
            ("[a\\", "[a\\", false),
            // `[:` not followed by a lowercase name and `:]` is a plain `[` member.
            ("[[:Al:]]", ":]", true),
            ("[\\]]", "]", true),
            // An unclosed `[` is an ordinary character.
            ("[ab", "[ab", true),
            ("[ab", "a", false),
            // Backslash quotes.
            ("\\*", "*", true),
            ("\\*", "x", false),
            ("a\\?", "a?", true),
            // A trailing backslash matches nothing.
            ("\\", "\\", false),
            ("a*\\", "ab\\", false),
        ];
        for (pattern, text, want) in cases {
            assert_eq!(
                fnmatch(pattern.as_bytes(), text.as_bytes()),
                *want,
                "{pattern:?} {text:?}"
            );
        }
    }

    /// The case that makes a recursive matcher take exponential time finishes at once.
    #[test]
    fn fnmatch_has_no_exponential_blowup() {
        let pattern = "a*".repeat(50) + "b";
        let text = "a".repeat(5_000);
        assert!(!fnmatch(pattern.as_bytes(), text.as_bytes()));
        let pattern = "*?".repeat(1_000) + "[[:digit:]]";
        assert!(fnmatch(
            pattern.as_bytes(),
            ("x".repeat(3_000) + "1").as_bytes()
        ));
    }

    #[test]
    fn aliases_compare_with_dashes_as_underscores() {
        let index = ModuleIndex::parse(
            "alias fs-efivarfs efivarfs\nalias x[a-c]-y dashed-mod\n",
            "",
            "",
        )
        .unwrap();
        assert_eq!(index.match_modalias("fs_efivarfs"), strings(&["efivarfs"]));
        assert_eq!(index.match_modalias("fs-efivarfs"), strings(&["efivarfs"]));
        // Inside a class `-` is a range, not a character to rewrite.
        assert_eq!(index.match_modalias("xb_y"), strings(&["dashed_mod"]));
        assert!(index.match_modalias("x-_y").is_empty());
    }
}

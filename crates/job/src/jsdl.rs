//! The common subset of JSDL 1.0 (GFD.56, XtreemOS's job format) and its
//! POSIX application extension, mapped onto [`JobSpec`].
//!
//! Read: `JobIdentification/JobName`; `Application/POSIXApplication/`
//! `Executable`, `Argument`, `Input`, `Output`, `Error`,
//! `WorkingDirectory`, `Environment`, `WallTimeLimit`; `Resources/`
//! `TotalCPUCount`, `IndividualCPUCount`, `TotalPhysicalMemory`,
//! `IndividualPhysicalMemory`, `CandidateHosts/HostName`,
//! `OperatingSystem/OperatingSystemType/OperatingSystemName`,
//! `CPUArchitecture/CPUArchitectureName`. Descriptions and annotations are
//! skipped. Any other element of the JSDL namespaces (`DataStaging`,
//! `FileSystem`, `ExclusiveExecution`, the POSIX limits, ...) is refused,
//! naming it: ignoring it would run a different job than the one described.
//! Elements of other namespaces are extensions and are skipped; an element
//! in no namespace is refused (most likely a JSDL element without its
//! prefix). DTDs are refused.
//!
//! The mapping:
//!
//! | JSDL | JobSpec |
//! |---|---|
//! | `JobName` (trimmed) | `name` |
//! | `Executable`, `Input`, `Output`, `Error`, `WorkingDirectory` (trimmed) | `executable`, `stdin`, `stdout`, `stderr`, `workdir` |
//! | `Argument`, `Environment name=".."` (text as is) | `args`, `env` |
//! | `WallTimeLimit` (seconds) | `resources.walltime_secs` |
//! | `IndividualCPUCount` | `resources.cores` (cores per unit; default 1) |
//! | `TotalCPUCount` (CPUs of the whole job) | `count` = TotalCPUCount / cores, rounded up |
//! | `IndividualPhysicalMemory`, else `TotalPhysicalMemory` / `count` (bytes) | `resources.memory_bytes` |
//! | `CandidateHosts/HostName`* | constraint `name in [a, b]` |
//! | `CPUArchitectureName` (`x86_64`, `x86`, `arm`, ...) | constraint `arch==x86_64`, `arch in [arm, aarch64]`, ... |
//! | `OperatingSystemName` `LINUX` | nothing (every node runs Linux; any other name is refused) |
//!
//! A range (`Exact`, `LowerBoundedRange`, `Range`) gives its least value
//! (an exclusive lower bound the next whole number); an upper bound alone
//! is refused, and so are several alternatives. Errors name the element
//! path below `JobDefinition` and give its line; errors found afterwards by
//! [`JobSpec::validate`] name the `JobSpec` field.

use roxmltree::{Document, Node, ParsingOptions};

use crate::error::{SpecError, quote};
use crate::spec::{CORES_MAX, COUNT_MAX, JobSpec, check_int, check_memory, check_walltime};

pub const JSDL_NS: &str = "http://schemas.ggf.org/jsdl/2005/11/jsdl";
pub const JSDL_POSIX_NS: &str = "http://schemas.ggf.org/jsdl/2005/11/jsdl-posix";

/// Most XML nodes parsed: far more than any real job needs.
const XML_NODES_MAX: u32 = 100_000;

struct Reader<'a, 'input> {
    doc: &'a Document<'input>,
}

/// Where an element is: its path below `JobDefinition`.
fn path(node: Node) -> String {
    let mut names: Vec<&str> = node
        .ancestors()
        .filter(|n| n.is_element())
        .map(|n| n.tag_name().name())
        .collect();
    names.pop(); // JobDefinition
    names.reverse();
    names.join("/")
}

impl<'a, 'input> Reader<'a, 'input> {
    fn error(&self, node: Node, message: impl std::fmt::Display) -> SpecError {
        let line = self.doc.text_pos_at(node.range().start).row;
        SpecError::new(path(node), format!("{message} (line {line})"))
    }

    /// The element children worth reading: JSDL ones. Extensions in other
    /// namespaces are skipped; an element in no namespace is refused (it is
    /// most likely a JSDL element missing its prefix).
    fn children(&self, node: Node<'a, 'input>) -> Result<Vec<Node<'a, 'input>>, SpecError> {
        let mut out = Vec::new();
        for child in node.children().filter(|n| n.is_element()) {
            match child.tag_name().namespace() {
                Some(JSDL_NS | JSDL_POSIX_NS) => out.push(child),
                Some(_) => {}
                None => {
                    return Err(self.error(
                        child,
                        format!(
                            "is in no namespace; JSDL elements are in {JSDL_NS} or {JSDL_POSIX_NS}"
                        ),
                    ));
                }
            }
        }
        Ok(out)
    }

    fn unsupported(&self, node: Node) -> SpecError {
        self.error(
            node,
            "is not supported by Xtreem; it is refused rather than ignored, which would run a different job",
        )
    }

    fn expect_ns(&self, node: Node, ns: &str) -> Result<(), SpecError> {
        if node.tag_name().namespace() == Some(ns) {
            Ok(())
        } else {
            Err(self.error(node, format!("belongs in namespace {ns}")))
        }
    }

    fn once(
        &self,
        slot: &mut Option<Node<'a, 'input>>,
        node: Node<'a, 'input>,
    ) -> Result<(), SpecError> {
        if slot.is_some() {
            return Err(self.error(node, "is given twice"));
        }
        *slot = Some(node);
        Ok(())
    }

    /// The text content of an element that must hold text only.
    fn text(&self, node: Node) -> Result<String, SpecError> {
        if node.children().any(|n| n.is_element()) {
            return Err(self.error(node, "must contain text only"));
        }
        if node
            .attributes()
            .any(|a| a.name() == "filesystemName" && a.namespace().is_none())
        {
            return Err(self.error(
                node,
                "filesystemName is not supported (file systems are not)",
            ));
        }
        Ok(node
            .children()
            .filter(|n| n.is_text())
            .filter_map(|n| n.text())
            .collect())
    }

    fn trimmed(&self, node: Node) -> Result<String, SpecError> {
        Ok(self.text(node)?.trim().to_owned())
    }

    /// A whole number written as xsd:positiveInteger or a double.
    fn number(&self, node: Node, text: &str) -> Result<f64, SpecError> {
        match text.trim().parse::<f64>() {
            Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
            _ => Err(self.error(
                node,
                format!("{} is not a non-negative number", quote(text.trim())),
            )),
        }
    }

    fn whole(&self, node: Node, value: f64) -> Result<u64, SpecError> {
        if value.fract() != 0.0 || value >= 1e18 {
            return Err(self.error(node, format!("{value} is not a whole number")));
        }
        Ok(value as u64)
    }

    /// The least value a RangeValue_Type element allows: `Exact`,
    /// `LowerBoundedRange` or `Range/LowerBound` (an exclusive bound moves
    /// up to the next whole number). An upper bound alone is refused.
    fn range_min(&self, node: Node) -> Result<u64, SpecError> {
        let mut lowest: Option<u64> = None;
        let mut upper_only = None;
        for child in self.children(node)? {
            self.expect_ns(child, JSDL_NS)?;
            let bound = match child.tag_name().name() {
                "Exact" | "LowerBoundedRange" => child,
                "Range" => {
                    let mut lower = None;
                    for part in self.children(child)? {
                        match part.tag_name().name() {
                            "LowerBound" => self.once(&mut lower, part)?,
                            "UpperBound" => {}
                            _ => return Err(self.unsupported(part)),
                        }
                    }
                    lower.ok_or_else(|| self.error(child, "needs a LowerBound"))?
                }
                "UpperBoundedRange" => {
                    upper_only = Some(child);
                    continue;
                }
                _ => return Err(self.unsupported(child)),
            };
            if lowest.is_some() {
                return Err(self.error(
                    child,
                    "several alternative values are not supported; give one Exact or LowerBoundedRange",
                ));
            }
            let value = self.number(bound, &self.text(bound)?)?;
            let exclusive = bound.attribute("exclusiveBound") == Some("true");
            let min = if exclusive {
                value.floor() + 1.0
            } else {
                value.ceil()
            };
            lowest = Some(self.whole(bound, min)?);
        }
        match (lowest, upper_only) {
            (Some(v), _) => Ok(v),
            (None, Some(upper)) => Err(self.error(
                upper,
                "an upper bound alone does not say how much to ask for; use Exact or LowerBoundedRange",
            )),
            (None, None) => Err(self.error(node, "needs an Exact or LowerBoundedRange value")),
        }
    }
}

/// What the Resources element asked for, before it is combined with the
/// count; amounts keep their element, for errors.
struct Wanted<'a, 'input> {
    total_cpus: Option<(u64, Node<'a, 'input>)>,
    cores: Option<(u64, Node<'a, 'input>)>,
    total_memory: Option<(u64, Node<'a, 'input>)>,
    memory: Option<(u64, Node<'a, 'input>)>,
    constraints: Vec<String>,
}

pub(crate) fn decode(text: &str) -> Result<JobSpec, SpecError> {
    let options = ParsingOptions {
        allow_dtd: false,
        nodes_limit: XML_NODES_MAX,
        ..ParsingOptions::default()
    };
    let doc = Document::parse_with_options(text, options)
        .map_err(|e| SpecError::new("", format!("not well-formed XML: {e}")))?;
    let reader = Reader { doc: &doc };
    let root = doc.root_element();
    if root.tag_name().namespace() != Some(JSDL_NS) || root.tag_name().name() != "JobDefinition" {
        return Err(SpecError::new(
            "",
            format!(
                "the root element is {}, not JobDefinition in namespace {JSDL_NS}",
                quote(root.tag_name().name())
            ),
        ));
    }
    let mut description = None;
    for child in reader.children(root)? {
        match (child.tag_name().namespace(), child.tag_name().name()) {
            (Some(JSDL_NS), "JobDescription") => reader.once(&mut description, child)?,
            _ => return Err(reader.unsupported(child)),
        }
    }
    let description = description
        .ok_or_else(|| SpecError::new("JobDescription", "missing: JSDL needs a JobDescription"))?;

    let mut identification = None;
    let mut application = None;
    let mut resources = None;
    for child in reader.children(description)? {
        match (child.tag_name().namespace(), child.tag_name().name()) {
            (Some(JSDL_NS), "JobIdentification") => reader.once(&mut identification, child)?,
            (Some(JSDL_NS), "Application") => reader.once(&mut application, child)?,
            (Some(JSDL_NS), "Resources") => reader.once(&mut resources, child)?,
            _ => return Err(reader.unsupported(child)),
        }
    }
    let mut name = None;
    if let Some(identification) = identification {
        for child in reader.children(identification)? {
            match (child.tag_name().namespace(), child.tag_name().name()) {
                (Some(JSDL_NS), "JobName") => {
                    name = Some(reader.trimmed(child)?).filter(|n| !n.is_empty());
                }
                (Some(JSDL_NS), "Description" | "JobAnnotation") => {}
                _ => return Err(reader.unsupported(child)),
            }
        }
    }
    let application = application.ok_or_else(|| {
        SpecError::new(
            "JobDescription/Application",
            "missing: say what to run in Application/POSIXApplication/Executable",
        )
    })?;
    let mut spec = posix_application(&reader, application)?;
    if let Some(name) = name {
        spec.name = name;
    }

    if let Some(resources) = resources {
        let wanted = read_resources(&reader, resources)?;
        apply_resources(&reader, &mut spec, wanted)?;
    }
    Ok(spec)
}

fn posix_application(reader: &Reader, application: Node) -> Result<JobSpec, SpecError> {
    let mut posix = None;
    for child in reader.children(application)? {
        match (child.tag_name().namespace(), child.tag_name().name()) {
            (Some(JSDL_POSIX_NS), "POSIXApplication") => reader.once(&mut posix, child)?,
            (Some(JSDL_NS), "ApplicationName" | "ApplicationVersion" | "Description") => {}
            _ => return Err(reader.unsupported(child)),
        }
    }
    let posix = posix.ok_or_else(|| {
        reader.error(
            application,
            format!("needs a POSIXApplication element (namespace {JSDL_POSIX_NS})"),
        )
    })?;
    let mut executable = None;
    let children = reader.children(posix)?;
    for child in &children {
        if child.tag_name().name() == "Executable" {
            reader.once(&mut executable, *child)?;
        }
    }
    let executable = executable.ok_or_else(|| {
        SpecError::new(
            format!("{}/Executable", path(posix)),
            "missing: say which program to run",
        )
    })?;
    let mut spec = JobSpec::new(reader.trimmed(executable)?);
    let mut seen = Vec::new();
    for child in children {
        reader.expect_ns(child, JSDL_POSIX_NS)?;
        let name = child.tag_name().name();
        if name != "Argument" && name != "Environment" {
            if seen.contains(&name) {
                return Err(reader.error(child, "is given twice"));
            }
            seen.push(name);
        }
        match name {
            "Executable" => {}
            "Argument" => spec.args.push(reader.text(child)?),
            "Input" => spec.stdin = Some(reader.trimmed(child)?),
            "Output" => spec.stdout = Some(reader.trimmed(child)?),
            "Error" => spec.stderr = Some(reader.trimmed(child)?),
            "WorkingDirectory" => spec.workdir = Some(reader.trimmed(child)?),
            "Environment" => {
                let var = child
                    .attribute("name")
                    .ok_or_else(|| reader.error(child, "needs a name attribute"))?;
                let value = reader.text(child)?;
                if spec.env.insert(var.to_owned(), value).is_some() {
                    return Err(
                        reader.error(child, format!("variable {} is set twice", quote(var)))
                    );
                }
            }
            "WallTimeLimit" => {
                let text = reader.text(child)?;
                let secs = reader.number(child, &text)?;
                let secs = reader.whole(child, secs)?;
                check_walltime("", secs).map_err(|e| reader.error(child, e.message))?;
                spec.resources.walltime_secs = Some(secs);
            }
            _ => return Err(reader.unsupported(child)),
        }
    }
    Ok(spec)
}

fn read_resources<'a, 'input>(
    reader: &Reader<'a, 'input>,
    resources: Node<'a, 'input>,
) -> Result<Wanted<'a, 'input>, SpecError> {
    let mut wanted = Wanted {
        total_cpus: None,
        cores: None,
        total_memory: None,
        memory: None,
        constraints: Vec::new(),
    };
    let mut seen = Vec::new();
    for child in reader.children(resources)? {
        reader.expect_ns(child, JSDL_NS)?;
        let name = child.tag_name().name();
        if seen.contains(&name) {
            return Err(reader.error(child, "is given twice"));
        }
        seen.push(name);
        match name {
            "TotalCPUCount" => wanted.total_cpus = Some((reader.range_min(child)?, child)),
            "IndividualCPUCount" => wanted.cores = Some((reader.range_min(child)?, child)),
            "TotalPhysicalMemory" => wanted.total_memory = Some((reader.range_min(child)?, child)),
            "IndividualPhysicalMemory" => wanted.memory = Some((reader.range_min(child)?, child)),
            "CandidateHosts" => wanted.constraints.push(candidate_hosts(reader, child)?),
            "OperatingSystem" => operating_system(reader, child)?,
            "CPUArchitecture" => wanted.constraints.push(cpu_architecture(reader, child)?),
            _ => return Err(reader.unsupported(child)),
        }
    }
    Ok(wanted)
}

fn apply_resources(reader: &Reader, spec: &mut JobSpec, wanted: Wanted) -> Result<(), SpecError> {
    let mut cores = 1;
    if let Some((n, node)) = wanted.cores {
        check_int("", n, 1, CORES_MAX.into()).map_err(|e| reader.error(node, e.message))?;
        cores = n;
    }
    spec.resources.cores = cores as u32;
    if let Some((total, node)) = wanted.total_cpus {
        // TotalCPUCount counts CPUs over the whole job: that many cores,
        // in units of `cores` each.
        let count = total.div_ceil(cores);
        check_int("", count, 1, COUNT_MAX.into()).map_err(|e| {
            reader.error(
                node,
                format!(
                    "{total} CPUs in units of {cores} makes {count} units; the count {}",
                    e.message
                ),
            )
        })?;
        spec.count = count as u32;
    }
    let memory = match (wanted.memory, wanted.total_memory) {
        (Some((bytes, node)), _) => Some((bytes, node)),
        (None, Some((total, node))) => Some((total.div_ceil(u64::from(spec.count)), node)),
        (None, None) => None,
    };
    if let Some((bytes, node)) = memory {
        check_memory("", bytes)
            .map_err(|e| reader.error(node, format!("memory per unit {}", e.message)))?;
        spec.resources.memory_bytes = bytes;
    }
    if !wanted.constraints.is_empty() {
        spec.constraints = Some(wanted.constraints.join(" && "));
    }
    Ok(())
}

/// A word the query language reads as a bare value.
fn is_query_word(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn candidate_hosts(reader: &Reader, node: Node) -> Result<String, SpecError> {
    let mut hosts = Vec::new();
    for child in reader.children(node)? {
        match (child.tag_name().namespace(), child.tag_name().name()) {
            (Some(JSDL_NS), "HostName") => {
                let host = reader.trimmed(child)?;
                if !is_query_word(&host) {
                    return Err(reader.error(child, format!("{} is not a host name", quote(&host))));
                }
                hosts.push(host);
            }
            _ => return Err(reader.unsupported(child)),
        }
    }
    if hosts.is_empty() {
        return Err(reader.error(node, "needs at least one HostName"));
    }
    Ok(format!("name in [{}]", hosts.join(", ")))
}

/// Xtreem nodes run Linux; the directory's `os` attribute is the
/// distribution's name, so LINUX adds no constraint and anything else
/// cannot be satisfied.
fn operating_system(reader: &Reader, node: Node) -> Result<(), SpecError> {
    for child in reader.children(node)? {
        match (child.tag_name().namespace(), child.tag_name().name()) {
            (Some(JSDL_NS), "OperatingSystemType") => {
                for name in reader.children(child)? {
                    match (name.tag_name().namespace(), name.tag_name().name()) {
                        (Some(JSDL_NS), "OperatingSystemName") => {
                            let os = reader.trimmed(name)?;
                            if os != "LINUX" {
                                return Err(reader.error(
                                    name,
                                    format!(
                                        "{} cannot be satisfied: Xtreem nodes run LINUX",
                                        quote(&os)
                                    ),
                                ));
                            }
                        }
                        _ => return Err(reader.unsupported(name)),
                    }
                }
            }
            (Some(JSDL_NS), "Description") => {}
            _ => return Err(reader.unsupported(child)),
        }
    }
    Ok(())
}

/// JSDL's processor names mapped to the directory's `arch` values (Rust's
/// names for the architectures, as nodes report them).
fn cpu_architecture(reader: &Reader, node: Node) -> Result<String, SpecError> {
    let mut found = None;
    for child in reader.children(node)? {
        match (child.tag_name().namespace(), child.tag_name().name()) {
            (Some(JSDL_NS), "CPUArchitectureName") => reader.once(&mut found, child)?,
            _ => return Err(reader.unsupported(child)),
        }
    }
    let name_node = found.ok_or_else(|| reader.error(node, "needs a CPUArchitectureName"))?;
    let name = reader.trimmed(name_node)?;
    Ok(match name.as_str() {
        "x86_64" => "arch==x86_64",
        "x86" | "x86_32" => "arch==x86",
        "arm" => "arch in [arm, aarch64]",
        "powerpc" => "arch in [powerpc, powerpc64]",
        "sparc" => "arch in [sparc, sparc64]",
        "mips" => "arch in [mips, mips64]",
        "ia64" => "arch==ia64",
        "parisc" => "arch==parisc",
        _ => {
            return Err(reader.error(
                name_node,
                format!(
                    "{} is not a JSDL processor architecture this can map (x86_64, x86, x86_32, arm, powerpc, sparc, mips, ia64, parisc)",
                    quote(&name)
                ),
            ));
        }
    }
    .to_owned())
}

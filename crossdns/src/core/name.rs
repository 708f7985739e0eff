//! Query names: which of our zones a name falls in, and its labels below the apex.

/// The zones crossdns serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Zone {
    /// `hyperos.local`: `<svc>.<ns>.svc.hyperos.local` names the ready global endpoints of a
    /// service in every cluster.
    Hyperos,
    /// `clusterset.local`: the MCS zone, as KEP-1645's DNS specification describes it.
    Clusterset,
}

impl Zone {
    /// Every zone served.
    pub const ALL: [Self; 2] = [Self::Hyperos, Self::Clusterset];

    /// The zone's apex, without the trailing dot.
    pub fn apex(self) -> &'static str {
        match self {
            Self::Hyperos => "hyperos.local",
            Self::Clusterset => "clusterset.local",
        }
    }

    fn apex_labels(self) -> [&'static str; 2] {
        match self {
            Self::Hyperos => ["local", "hyperos"],
            Self::Clusterset => ["local", "clusterset"],
        }
    }
}

/// A query name split at the apex of one of our zones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryName {
    /// The zone the name falls in.
    pub zone: Zone,
    /// The labels below the apex, lowercased, from the apex outwards (`svc`, `<ns>`, `<svc>`,
    /// ...). A label that no Kubernetes name could match (it holds a dot, or bytes that are not
    /// ASCII) is kept as an empty string, which matches nothing.
    pub below_apex: Vec<String>,
}

impl QueryName {
    /// Splits a name given as wire labels (leftmost first, without the root). `None` when the
    /// name is outside our zones.
    pub fn from_labels<'a, I>(labels: I) -> Option<Self>
    where
        I: IntoIterator<Item = &'a [u8]>,
        I::IntoIter: DoubleEndedIterator,
    {
        let mut rev = labels.into_iter().rev();
        let first = rev.next()?;
        let second = rev.next()?;
        let zone = Zone::ALL.into_iter().find(|zone| {
            let [tld, name] = zone.apex_labels();
            first.eq_ignore_ascii_case(tld.as_bytes())
                && second.eq_ignore_ascii_case(name.as_bytes())
        })?;
        let below_apex = rev.map(normalize_label).collect();
        Some(Self { zone, below_apex })
    }

    /// Splits a name in presentation form (`Foo.bar.svc.clusterset.local.`). Escapes are not
    /// interpreted: this is for names we build and for tests.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.strip_suffix('.').unwrap_or(text);
        Self::from_labels(text.split('.').map(str::as_bytes).collect::<Vec<_>>())
    }
}

fn normalize_label(label: &[u8]) -> String {
    if label.iter().all(|b| b.is_ascii_graphic() && *b != b'.') {
        label
            .iter()
            .map(|b| char::from(b.to_ascii_lowercase()))
            .collect()
    } else {
        String::new()
    }
}

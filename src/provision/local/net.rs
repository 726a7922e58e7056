//! VPC networks of the local driver. Each VPC is a network namespace of this host holding a
//! bridge, `vpc0`, with the block's gateway address; every node of a private store runs inside
//! it on an address of its own (a /32 on the bridge); a peering is a veth pair between two
//! namespaces with a route for each block. No default route and no NAT: nothing in a VPC reaches
//! beyond this host, and nothing outside reaches in except through a peering.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

use crate::domain::{PeeringId, VpcId, gateway};
use crate::pg::Netns;
use crate::provision::{NetworkSpec, NodeNetwork, PeeringSpec};

/// Where `ip netns` keeps its namespaces (iproute2's default; `/run/netns` on most systems).
const NETNS_DIR: &str = "/var/run/netns";
const BRIDGE: &str = "vpc0";
/// Namespaces made by any Berth start with this.
const PREFIX: &str = "berth-";
/// Peering links: this, then the end of the peering's id (15 characters in all, the limit).
const LINK_PREFIX: &str = "pr-";
/// An `ip` call that takes longer than this is stuck.
const IP_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest interface alias the kernel keeps.
const MAX_ALIAS: usize = 255;

#[derive(Debug, Clone)]
pub struct Net {
    ip: PathBuf,
    nsenter: PathBuf,
    /// This Berth's mark, from its data folder: its namespaces are `berth-<tag>-<vpc id>`, so that
    /// several Berths (or test processes) on one host never touch each other's.
    tag: String,
    /// The data folder, written on each VPC's bridge: a later Berth removes namespaces whose data
    /// folder is gone (their Berth can never come back for them).
    root: PathBuf,
}

/// The mark of the Berth whose data folder is `root`.
pub fn tag_for(root: &Path) -> String {
    hex::encode(Sha256::digest(root.as_os_str().as_encoded_bytes()))[..10].to_owned()
}

/// The namespace that the Berth whose data folder is `root` makes for a VPC.
pub fn netns_name(root: &Path, vpc_id: VpcId) -> String {
    name(&tag_for(root), vpc_id)
}

fn name(tag: &str, vpc_id: VpcId) -> String {
    format!("{PREFIX}{tag}-{}", vpc_id.0.simple())
}

fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

impl Net {
    /// The network tools, when this host lets Berth make VPCs; else why not, for users.
    pub fn probe(root: &Path) -> Result<Self, String> {
        if !Path::new("/proc/self/ns/net").exists() {
            return Err("VPCs on this cloud need Linux network namespaces, which this host lacks".into());
        }
        let uid = nix::unistd::geteuid();
        if !uid.is_root() {
            return Err(format!(
                "VPCs on this cloud need Berth to run as root, to make network namespaces; it runs as uid {uid}"
            ));
        }
        let ip = find_tool("ip").ok_or(
            "VPCs on this cloud need the `ip` command (iproute2), which is not installed on this host",
        )?;
        let nsenter = find_tool("nsenter").ok_or(
            "VPCs on this cloud need the `nsenter` command (util-linux), which is not installed on this host",
        )?;
        let works = std::process::Command::new(&ip)
            .args(["netns", "list"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !works {
            return Err(format!(
                "VPCs on this cloud need `{} netns`, which fails on this host",
                ip.display()
            ));
        }
        Ok(Self { ip, nsenter, tag: tag_for(root), root: root.to_owned() })
    }

    /// The namespace of a VPC.
    pub fn netns_name(&self, vpc_id: VpcId) -> String {
        name(&self.tag, vpc_id)
    }

    /// How a server enters the VPC's network.
    pub fn netns(&self, vpc_id: VpcId) -> Netns {
        Netns { nsenter: self.nsenter.clone(), path: Path::new(NETNS_DIR).join(self.netns_name(vpc_id)) }
    }

    async fn ip(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut cmd = tokio::process::Command::new(&self.ip);
        cmd.args(args).stdin(Stdio::null());
        let out = crate::pg::run_for(cmd, &format!("ip {}", args.join(" ")), IP_TIMEOUT).await?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `ip -n <ns> …`
    async fn ip_in(&self, ns: &str, args: &[&str]) -> anyhow::Result<String> {
        let mut all = vec!["-n", ns];
        all.extend_from_slice(args);
        self.ip(&all).await
    }

    async fn namespaces(&self) -> anyhow::Result<Vec<String>> {
        let text = self.ip(&["-j", "netns", "list"]).await?;
        if text.trim().is_empty() {
            return Ok(vec![]);
        }
        let list: Vec<serde_json::Value> =
            serde_json::from_str(&text).context("reading `ip -j netns list`")?;
        Ok(list.iter().filter_map(|n| n["name"].as_str().map(str::to_owned)).collect())
    }

    /// The namespace's links: `(name, alias)`.
    async fn links(&self, ns: &str) -> anyhow::Result<Vec<(String, Option<String>)>> {
        let text = self.ip_in(ns, &["-j", "link", "show"]).await?;
        let list: Vec<serde_json::Value> =
            serde_json::from_str(&text).context("reading `ip -j link show`")?;
        Ok(list
            .iter()
            .filter_map(|l| {
                let name = l["ifname"].as_str()?.to_owned();
                Some((name, l["ifalias"].as_str().map(str::to_owned)))
            })
            .collect())
    }

    async fn has_link(&self, ns: &str, link: &str) -> anyhow::Result<bool> {
        Ok(self.links(ns).await?.iter().any(|(n, _)| n == link))
    }

    fn exists(&self, ns: &str) -> bool {
        Path::new(NETNS_DIR).join(ns).exists()
    }

    pub async fn create_network(&self, net: &NetworkSpec) -> anyhow::Result<()> {
        let ns = self.netns_name(net.vpc_id);
        // A namespace file left by a crash inside `ip netns add` is no namespace: made again.
        if self.exists(&ns) && self.links(&ns).await.is_err() {
            self.ip(&["netns", "del", &ns]).await?;
        }
        if !self.exists(&ns) {
            self.ip(&["netns", "add", &ns]).await?;
        }
        self.ip_in(&ns, &["link", "set", "lo", "up"]).await?;
        if !self.has_link(&ns, BRIDGE).await? {
            self.ip_in(&ns, &["link", "add", BRIDGE, "type", "bridge"]).await?;
        }
        let root = self.root.to_string_lossy();
        if root.len() <= MAX_ALIAS {
            self.ip_in(&ns, &["link", "set", BRIDGE, "alias", &root]).await?;
        }
        let gw = format!("{}/{}", gateway(net.cidr), net.cidr.prefix_len());
        self.ip_in(&ns, &["addr", "replace", &gw, "dev", BRIDGE]).await?;
        self.ip_in(&ns, &["link", "set", BRIDGE, "up"]).await?;
        tracing::info!(vpc = %net.vpc_id, netns = %ns, cidr = %net.cidr, "VPC network ready");
        Ok(())
    }

    pub async fn remove_network(&self, vpc_id: VpcId) -> anyhow::Result<()> {
        let ns = self.netns_name(vpc_id);
        if self.exists(&ns) {
            // Its links go with it, and a veth's other end with them.
            self.ip(&["netns", "del", &ns]).await?;
            tracing::info!(vpc = %vpc_id, netns = %ns, "removed VPC network");
        }
        Ok(())
    }

    /// Gives the node its address in the VPC, for it to listen on.
    pub async fn add_address(&self, node: &NodeNetwork) -> anyhow::Result<()> {
        let ns = self.netns_name(node.network.vpc_id);
        if !self.exists(&ns) {
            bail!("the network of VPC {} is not on this host", node.network.vpc_id);
        }
        self.ip_in(&ns, &["addr", "replace", &format!("{}/32", node.address), "dev", BRIDGE]).await?;
        Ok(())
    }

    pub async fn remove_address(&self, node: &NodeNetwork) -> anyhow::Result<()> {
        let ns = self.netns_name(node.network.vpc_id);
        if !self.exists(&ns) {
            return Ok(());
        }
        let held = self.ip_in(&ns, &["-4", "-o", "addr", "show", "dev", BRIDGE]).await?;
        if held.contains(&format!("inet {}/32 ", node.address)) {
            self.ip_in(&ns, &["addr", "del", &format!("{}/32", node.address), "dev", BRIDGE]).await?;
        }
        Ok(())
    }

    /// The link of a peering, in both namespaces.
    fn link_name(peering_id: PeeringId) -> String {
        let id = peering_id.0.simple().to_string();
        // The end of the id: in a v7 id the start is a timestamp, the end random.
        format!("{LINK_PREFIX}{}", &id[id.len() - 12..])
    }

    pub async fn create_peering(&self, p: &PeeringSpec) -> anyhow::Result<()> {
        let link = Self::link_name(p.peering_id);
        let (ns_a, ns_b) = (self.netns_name(p.a.vpc_id), self.netns_name(p.b.vpc_id));
        for (ns, vpc) in [(&ns_a, p.a.vpc_id), (&ns_b, p.b.vpc_id)] {
            if !self.exists(ns) {
                bail!("the network of VPC {vpc} is not on this host");
            }
        }
        // A veth pair lives or dies whole, so one end present means both are.
        if !self.has_link(&ns_a, &link).await? {
            if self.has_link(&ns_b, &link).await? {
                self.ip_in(&ns_b, &["link", "del", &link]).await?;
            }
            // Both ends are made inside their namespaces: the host's own names never clash.
            self.ip(&[
                "link", "add", &link, "netns", &ns_a, "type", "veth", "peer", "name", &link, "netns", &ns_b,
            ])
            .await?;
        }
        for (ns, here, there) in [(&ns_a, &p.a, &p.b), (&ns_b, &p.b, &p.a)] {
            self.ip_in(ns, &["link", "set", &link, "up"]).await?;
            let (to, src) = (there.cidr.to_string(), gateway(here.cidr).to_string());
            self.ip_in(ns, &["route", "replace", &to, "dev", &link, "src", &src]).await?;
        }
        tracing::info!(peering = %p.peering_id, a = %p.a.cidr, b = %p.b.cidr, "VPC peering connected");
        Ok(())
    }

    pub async fn remove_peering(&self, p: &PeeringSpec) -> anyhow::Result<()> {
        let link = Self::link_name(p.peering_id);
        for vpc in [p.a.vpc_id, p.b.vpc_id] {
            let ns = self.netns_name(vpc);
            // Deleting one end deletes the pair, and the routes through it.
            if self.exists(&ns) && self.has_link(&ns, &link).await? {
                self.ip_in(&ns, &["link", "del", &link]).await?;
                tracing::info!(peering = %p.peering_id, "VPC peering disconnected");
            }
        }
        Ok(())
    }

    pub async fn retain(&self, vpcs: &[VpcId], peerings: &[PeeringId]) -> anyhow::Result<Vec<String>> {
        let keep_links: HashSet<String> = peerings.iter().map(|p| Self::link_name(*p)).collect();
        let ours = format!("{PREFIX}{}-", self.tag);
        let mut removed = vec![];
        for ns in self.namespaces().await? {
            let Some(rest) = ns.strip_prefix(PREFIX) else { continue };
            if let Some(id) = ns.strip_prefix(&ours) {
                let known = id.parse::<VpcId>().is_ok_and(|id| vpcs.contains(&id));
                if !known && self.holds_processes(&ns).await? {
                    // A server still runs in it (one set aside in quarantine is stopped first).
                    tracing::error!(%ns, "a network namespace no VPC knows still holds processes: left as it is");
                    continue;
                }
                if !known {
                    self.ip(&["netns", "del", &ns]).await?;
                    removed.push(format!("network namespace {ns}"));
                    continue;
                }
                // A file that is no namespace (Berth killed inside `ip netns add` or `del`) holds
                // no links; the VPC's job, or the restore of its network below, deals with it.
                let Ok(links) = self.links(&ns).await else { continue };
                for (link, _) in links {
                    // Deleting one end of a pair deletes the other, which may be listed next.
                    let stray = link.starts_with(LINK_PREFIX) && !keep_links.contains(&link);
                    if stray && self.has_link(&ns, &link).await? {
                        self.ip_in(&ns, &["link", "del", &link]).await?;
                        removed.push(format!("peering link {link} in {ns}"));
                    }
                }
            } else if self.orphaned(&ns, rest).await && !self.holds_processes(&ns).await? {
                self.ip(&["netns", "del", &ns]).await?;
                removed.push(format!("network namespace {ns} of a removed Berth data folder"));
            }
        }
        Ok(removed)
    }

    /// Whether anything runs inside the namespace: such a namespace is never removed.
    async fn holds_processes(&self, ns: &str) -> anyhow::Result<bool> {
        Ok(!self.ip(&["netns", "pids", ns]).await?.trim().is_empty())
    }

    /// Another Berth's namespace whose data folder no longer exists: that Berth is gone for good
    /// (a removed installation, a finished test run) and nothing else will remove it.
    async fn orphaned(&self, ns: &str, rest: &str) -> bool {
        let Some((tag, _)) = rest.split_once('-') else { return false };
        let Ok(links) = self.links(ns).await else { return false };
        let Some(root) = links.into_iter().find(|(n, _)| n == BRIDGE).and_then(|(_, alias)| alias) else {
            return false;
        };
        // A truncated or foreign alias does not hash to the tag: such a namespace is left alone.
        let root = Path::new(&root);
        root.is_absolute() && tag_for(root) == tag && !root.exists()
    }
}

//! The chain script and the boot-loader entries that start iPXE with it: pure rendering.

use anyhow::{Context as _, Result};

use super::url::BootUrl;

/// The chain script's file name, in the output directory, on the ISO, and as an initrd.
pub const SCRIPT_NAME: &str = "chain.ipxe";
/// iPXE as a Linux kernel (the `.lkrn` target), as Debian's package `ipxe` ships it.
pub const LKRN_NAME: &str = "ipxe.lkrn";
/// Seconds between attempts when DHCP or the chain fails.
pub const RETRY_SECONDS: u32 = 5;

const TEMPLATE: &str = include_str!("../../templates/chain.ipxe.tera");

/// Renders `templates/chain.ipxe.tera` for `url`: DHCP on every NIC, chain the URL, retry both.
///
/// The URL is validated by [`BootUrl`], so it is one literal word for iPXE; iPXE's own
/// `${…}` settings in the template pass through untouched.
pub fn render(url: &BootUrl) -> Result<String> {
    let mut tera = tera::Tera::default();
    tera.add_raw_template(SCRIPT_NAME, TEMPLATE)
        .context("parsing the built-in template chain.ipxe.tera")?;
    let mut context = tera::Context::new();
    context.insert("boot_url", url.as_str());
    context.insert("retry_seconds", &RETRY_SECONDS);
    tera.render(SCRIPT_NAME, &context)
        .context("rendering the built-in template chain.ipxe.tera")
}

/// A syslinux-family configuration (isolinux, syslinux, extlinux, PXELINUX) that boots
/// `ipxe.lkrn` with the script as its initrd; `place` says where the files go.
pub fn syslinux_cfg(url: &BootUrl, loader: &str, place: &str) -> String {
    format!(
        "# {loader}: start iPXE ({LKRN_NAME}) with the caas chain script ({SCRIPT_NAME}) as its\n\
         # initrd; the script brings the network up by DHCP and chains\n\
         #   {url}\n\
         # {place}\n\
         SERIAL 0 115200\n\
         DEFAULT caas-chain\n\
         PROMPT 0\n\
         TIMEOUT 0\n\
         LABEL caas-chain\n\
         \x20 KERNEL {LKRN_NAME}\n\
         \x20 INITRD {SCRIPT_NAME}\n"
    )
}

/// A GRUB 2 menu entry (BIOS) that boots `ipxe.lkrn` with the script as its initrd.
pub fn grub_cfg(url: &BootUrl) -> String {
    format!(
        "# GRUB 2 (BIOS boot): start iPXE ({LKRN_NAME}) with the caas chain script ({SCRIPT_NAME})\n\
         # as its initrd; the script brings the network up by DHCP and chains\n\
         #   {url}\n\
         # Paste the entry into grub.cfg (or /etc/grub.d/40_custom, then update-grub) and copy\n\
         # both files to /boot; on a separate /boot partition, drop the /boot prefix below.\n\
         # {LKRN_NAME} is a BIOS kernel: under UEFI, chain-load an ipxe.efi with the script\n\
         # embedded instead (caas chain build --target efi --ipxe-src DIR).\n\
         menuentry \"Network boot (iPXE, caas chain)\" {{\n\
         \x20   linux16 /boot/{LKRN_NAME}\n\
         \x20   initrd16 /boot/{SCRIPT_NAME}\n\
         }}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(value: &str) -> BootUrl {
        BootUrl::parse("--boot-url", value).unwrap()
    }

    #[test]
    fn renders_the_script_for_several_urls() {
        for value in [
            "http://matchbox.example.com:8080/boot.ipxe",
            "http://10.0.2.100:8080/boot.ipxe",
            "https://boot.lab/boot.ipxe?arch=amd64&x=1",
            "http://[fd00::1]:8080/boot.ipxe",
        ] {
            let name = value.replace(|c: char| !c.is_ascii_alphanumeric(), "_");
            insta::assert_snapshot!(name, render(&url(value)).unwrap());
        }
    }

    #[test]
    fn the_url_appears_once_and_ipxe_settings_pass_through() {
        let script = render(&url("http://m:8080/boot.ipxe")).unwrap();
        assert!(script.starts_with("#!ipxe\n"));
        assert_eq!(script.matches("http://m:8080/boot.ipxe").count(), 1);
        for setting in [
            "${caas-boot-url}",
            "${netX/ip}",
            "${netX/mac}",
            "${caas-attempt}",
        ] {
            assert!(script.contains(setting), "{setting} missing:\n{script}");
        }
        assert!(!script.contains("{{") && !script.contains("{%"), "{script}");
        // Every command that can fail is followed by `||` or `&&`: a failing command ends an
        // iPXE script, which would leave the machine at a dead prompt.
        for line in script.lines() {
            let command = line.split_whitespace().next().unwrap_or("");
            if ["dhcp", "chain", "sleep", "shell"].contains(&command) {
                assert!(line.contains("||"), "unguarded: {line}");
            }
        }
    }

    #[test]
    fn loader_entries_name_both_files() {
        let u = url("http://m:8080/boot.ipxe");
        for text in [syslinux_cfg(&u, "isolinux", "x"), grub_cfg(&u)] {
            assert!(
                text.contains(LKRN_NAME) && text.contains(SCRIPT_NAME),
                "{text}"
            );
            assert!(text.contains("http://m:8080/boot.ipxe"), "{text}");
        }
        assert!(grub_cfg(&u).contains("linux16 /boot/ipxe.lkrn\n    initrd16 /boot/chain.ipxe\n"));
    }
}

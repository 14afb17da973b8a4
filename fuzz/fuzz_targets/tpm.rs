//! TPM responses come from hardware or firmware: checking and parsing them
//! never panics, and a parsed PCR_Read answer is what its bytes say.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wyrcan_core::trust::tpm;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = tpm::check_response(data) {
        let _ = e.to_string();
    }
    for pcr in [0, 12, 23, 24] {
        match tpm::parse_pcr_read_response(data, pcr) {
            // The value is the response's last 32 bytes.
            Ok(value) => assert_eq!(&data[data.len() - 32..], &value[..]),
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
});

use cached_kit::cache_fn;

struct Report {
    rows: Vec<u32>,
}

#[cache_fn]
async fn report(month: u8) -> Report {
    Report { rows: vec![u32::from(month)] }
}

#[cache_fn(key = "label:{id}")]
fn label(id: u32) -> Result<std::rc::Rc<String>, String> {
    Ok(std::rc::Rc::new(id.to_string()))
}

fn main() {}

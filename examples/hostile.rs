fn main() {
    let t = std::time::Instant::now();
    let deep = "<div>".repeat(100_000) + "text" + &"</div>".repeat(100_000);
    let _ = gleaner::extract::extract(&deep, None);
    eprintln!("deep div {:?}", t.elapsed());
    let t = std::time::Instant::now();
    let _ = scraper::Html::parse_document(&deep);
    eprintln!("parse only {:?}", t.elapsed());
    let t = std::time::Instant::now();
    let _ = gleaner::extract::extract(&"<p>x</p>".repeat(200_000), None);
    eprintln!("many p {:?}", t.elapsed());
    let t = std::time::Instant::now();
    let deep = "<span>".repeat(100_000) + "text";
    let _ = gleaner::extract::extract(&deep, None);
    eprintln!("deep span {:?}", t.elapsed());
}

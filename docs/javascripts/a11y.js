// The theme's search box is a dialog without a name: screen readers announce it as "Search".
document.querySelectorAll('.md-search[role="dialog"]').forEach((box) => box.setAttribute("aria-label", "Search"));
